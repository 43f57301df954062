"""Gate evidence and phase transitions.

Evidence is one JSON file per finding (format `cutover.evidence/v1`, documented in
runbooks/reference/evidence.md): the judge's verdict, the drift gate, a soak or baseline run, a
chaos drill or a sign-off. Each names the phase it was collected in, the kind, and a verdict:
PROMOTE passes; HOLD and ROLLBACK do not. For each kind the newest file wins, so a later ROLLBACK
overrides an earlier PROMOTE.

Transitions are the campaign's (`cutover.plan.campaign`): forward one phase at a time (entering
phase N needs passing evidence of every kind that phase N-1 lists in `exit_evidence`, and N-1's
minimum duration spent), back to any earlier phase at any time, or a re-apply. Evidence counts only
for its own stack, under the plan digest it was judged under, and when collected since the phase began.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from cutover.plan.campaign import Campaign, Direction, PhaseClock
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
    ignored: list[str] = field(default_factory=list)  # evidence not counted, and why
    closed_by: list[str] = field(default_factory=list)  # the reasons that close it
    waiting: list[str] = field(default_factory=list)  # of those, the time still to spend in the phase

    def close(self, reason: str) -> None:
        self.passed = False
        self.reasons.append(reason)
        self.closed_by.append(reason)


def _not_counted(e: Evidence, plan_digest: str, stack: str | None, since: float | None) -> str | None:
    """Why a piece of evidence does not count for this gate, or None when it does."""
    where = e.source or "in memory"
    if stack is not None and e.stack != stack:
        return f"{where}: {'names no stack' if e.stack is None else f'for stack {e.stack!r}'}, not {stack!r}"
    if e.plan_digest != plan_digest:
        judged = f"judged under plan {e.plan_digest}" if e.plan_digest else "names no plan digest"
        return f"{where}: {judged}, the plan is {plan_digest} (collect it again under this plan)"
    if since is not None and e.created_at.timestamp() < since:
        return f"{where}: collected {e.created_at:%Y-%m-%d %H:%M:%S} UTC, before the phase began"
    return None


def check_gate(
    plan: Plan,
    target: str,
    evidence: list[Evidence],
    stack: str | None = None,
    clock: PhaseClock = PhaseClock(),
) -> GateResult:
    """Entry gate of `target` (the campaign's requirement): passing evidence of each kind the phase
    being left lists, for this stack (when given), judged under this plan, collected since the phase
    began (`clock.since`, the flags' record of its start, when known); and, when its start is known,
    the phase's minimum duration spent (`clock.scale` compresses it, for the rehearsal's clock)."""
    req = Campaign(plan).requirement(target)
    if req is None:
        return GateResult(target, True, ["the first phase has no entry gate"])
    digest = plan.digest()
    result = GateResult(target, True)
    for kind in req.evidence:
        candidates = []
        for e in evidence:
            if e.kind != kind or e.phase != req.leaving:
                continue
            why = _not_counted(e, digest, stack, clock.since)
            if why is None:
                candidates.append(e)
            else:
                result.ignored.append(why)
        if not candidates:
            result.close(f"no {kind} evidence from phase {req.leaving!r}" + (f" for stack {stack!r}" if stack else ""))
            continue
        newest = max(candidates, key=lambda e: e.created_at)
        result.used.append(newest)
        if newest.passed:
            result.reasons.append(f"{kind} from {req.leaving!r}: PROMOTE ({newest.source or 'in memory'})")
        else:
            why = "; ".join(newest.reasons) or "no reason given"
            result.close(f"{kind} from {req.leaving!r}: {newest.verdict} ({newest.source}): {why}")
    if not req.evidence:
        result.reasons.append(f"phase {req.leaving!r} requires no evidence")
    left = req.time_left(clock)
    if left is None:
        result.reasons.append(f"minimum duration of {req.leaving!r}: not checked (when the phase began is unknown)")
    elif left > 0:
        result.close(req.describe_wait(left))
        result.waiting.append(req.describe_wait(left))
    else:
        result.reasons.append(f"minimum duration of {req.leaving!r}: spent")
    return result


def check_transition(
    plan: Plan,
    current: str | None,
    target: str,
    evidence: list[Evidence],
    stack: str | None = None,
    clock: PhaseClock = PhaseClock(),
) -> tuple[Direction, GateResult | None]:
    """Allow or refuse moving from `current` (None: nothing deployed yet) to `target`: the campaign
    says which move it is; a forward move also needs its gate open (`check_gate`).

    Raises TransitionError with the reason and the fix; returns the direction and the gate result.
    """
    move = Campaign(plan).move(current, target)
    if move.direction != "forward":
        return move.direction, None
    gate = check_gate(plan, target, evidence, stack, clock)
    if not gate.passed:
        fixes = []
        if gate.closed_by != gate.waiting:
            fixes.append(f"collect passing evidence in {current!r} (see `cutover plan show --phase {current}`)")
        if gate.waiting:
            fixes.append(f"wait in {current!r} until its minimum duration has passed")
        raise TransitionError(
            f"the gate into {target!r} is closed: " + "; ".join(gate.closed_by),
            field="phase",
            fix=", and ".join(fixes) + "; or stay in the current phase",
        )
    return "forward", gate
