"""Gate evidence and phase transitions.

Evidence is one JSON file per finding (format `cutover.evidence/v1`, documented in
runbooks/reference/evidence.md): the judge's verdict, the drift gate, a soak or baseline run, a
chaos drill or a sign-off. Each names the phase it was collected in, the kind, and a verdict:
PROMOTE passes; HOLD and ROLLBACK do not. For each kind the newest file wins, so a later ROLLBACK
overrides an earlier PROMOTE.

Transitions: forward one phase at a time (entering phase N needs passing evidence of every kind
that phase N-1 lists in `exit_evidence`), back to any earlier phase at any time, or a re-apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from cutover.plan.errors import EvidenceError, TransitionError
from cutover.plan.model import EvidenceKind, Plan
from cutover.plan.yamlsrc import field_path

SCHEMA_ID: Final = "cutover.evidence/v1"
Verdict = Literal["PROMOTE", "HOLD", "ROLLBACK"]


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    status: Literal["pass", "fail", "nodata"]
    value: float | None = None
    threshold: float | None = None
    detail: str = ""


class Evidence(BaseModel):
    """One gate finding. `details` is free-form (figures of the producing tool)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["cutover.evidence/v1"] = Field(default=SCHEMA_ID, alias="schema")
    kind: EvidenceKind
    phase: str = Field(min_length=1)
    stack: str | None = Field(default=None, description="stack it applies to; null applies to every stack")
    verdict: Verdict
    created_at: AwareDatetime
    plan_digest: str | None = None
    reasons: list[str] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    samples: dict[str, int] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(default=None, exclude=True, description="file it was read from")

    @property
    def passed(self) -> bool:
        return self.verdict == "PROMOTE"

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2, exclude={"source"}) + "\n"


def new_evidence(kind: EvidenceKind, phase: str, verdict: Verdict, **kw: Any) -> Evidence:
    return Evidence(kind=kind, phase=phase, verdict=verdict, created_at=datetime.now(UTC), **kw)


def load_evidence_file(path: Path) -> Evidence:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EvidenceError(f"cannot read evidence: {exc}", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise EvidenceError(
            f"malformed JSON: {exc.msg}", file=str(path), line=exc.lineno, fix="the file must be one JSON object"
        ) from None
    try:
        ev = Evidence.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise EvidenceError(
            err["msg"],
            file=str(path),
            field=field_path(tuple(err["loc"])),
            fix=f"evidence files follow the {SCHEMA_ID} format (runbooks/reference/evidence.md)",
        ) from None
    return ev.model_copy(update={"source": str(path)})


def load_evidence(paths: list[Path] | Path | None) -> list[Evidence]:
    """Every evidence file under the given files or directories (directories: *.json, recursively)."""
    if paths is None:
        return []
    found: list[Evidence] = []
    for p in [paths] if isinstance(paths, Path) else paths:
        p = Path(p)
        if p.is_dir():
            found += [load_evidence_file(f) for f in sorted(p.rglob("*.json"))]
        elif p.is_file():
            found.append(load_evidence_file(p))
        else:
            raise EvidenceError("no such file or directory", file=str(p), fix="check the evidence path")
    return found


@dataclass
class GateResult:
    phase: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    used: list[Evidence] = field(default_factory=list)


def check_gate(plan: Plan, target: str, evidence: list[Evidence], stack: str | None = None) -> GateResult:
    """Entry gate of `target`: passing evidence of each kind the previous phase requires."""
    i = plan.index(target)
    if i == 0:
        return GateResult(target, True, ["the first phase has no entry gate"])
    prev = plan.phases[i - 1]
    result = GateResult(target, True)
    for kind in prev.exit_evidence:
        candidates = [e for e in evidence if e.kind == kind and e.phase == prev.name and e.stack in (None, stack)]
        if not candidates:
            result.passed = False
            result.reasons.append(
                f"no {kind} evidence from phase {prev.name!r}" + (f" for stack {stack!r}" if stack else "")
            )
            continue
        newest = max(candidates, key=lambda e: e.created_at)
        result.used.append(newest)
        if newest.passed:
            result.reasons.append(f"{kind} from {prev.name!r}: PROMOTE ({newest.source or 'in memory'})")
        else:
            result.passed = False
            why = "; ".join(newest.reasons) or "no reason given"
            result.reasons.append(f"{kind} from {prev.name!r}: {newest.verdict} ({newest.source}): {why}")
    if not prev.exit_evidence:
        result.reasons.append(f"phase {prev.name!r} requires no evidence")
    return result


Direction = Literal["start", "stay", "forward", "back"]


def check_transition(
    plan: Plan, current: str | None, target: str, evidence: list[Evidence], stack: str | None = None
) -> tuple[Direction, GateResult | None]:
    """Allow or refuse moving from `current` (None: nothing deployed yet) to `target`.

    Raises TransitionError with the reason and the fix; returns the direction and the gate result.
    """
    t = plan.index(target)
    if current is None:
        if t != 0:
            raise TransitionError(
                f"cannot start the campaign at {target!r}",
                field="phase",
                fix=f"the first deployment must be phase {plan.phases[0].name!r}",
            )
        return "start", None
    c = plan.index(current)
    if t == c:
        return "stay", None
    if t < c:
        return "back", None
    if t > c + 1:
        raise TransitionError(
            f"cannot jump from {current!r} to {target!r}: phases advance one at a time",
            field="phase",
            fix=f"set the phase to {plan.phases[c + 1].name!r} first, or back to an earlier one",
        )
    gate = check_gate(plan, target, evidence, stack)
    if not gate.passed:
        raise TransitionError(
            f"the gate into {target!r} is closed: " + "; ".join(r for r in gate.reasons if "PROMOTE" not in r),
            field="phase",
            fix=f"collect passing evidence in {current!r} (see `cutover plan show --phase {current}`), "
            "or stay in the current phase",
        )
    return "forward", gate
