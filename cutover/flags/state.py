"""Which state the flags are in: a typed `FlagState` (a phase, its overrides, the kill switch), the
flag set it renders to, and the way back from a flag set to its state.

`render_state` renders a state with the one renderer (`cutover.flags.document.render_flags`), the
overrides passed in as the flags to serve; `state_of` reads the state back from the flag set's
metadata. `flag_doc_problem` says whether raw bytes are a flag set that can be served at all (the
gateway checks each version of its flag file with it before the provider sees it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, get_args

from cutover.flags.document import render_flags
from cutover.plan.model import WRITE_ORDER, PhaseFlags, Plan, ReadPath, Treatment

READ_PATHS: tuple[str, ...] = get_args(ReadPath)  # legacy, shadow, memoryos: the plan lists them


@dataclass(frozen=True)
class FlagState:
    """What the flags say, in the plan's terms: a phase, optional overrides, the kill switch."""

    phase: str
    kill_switch: bool = False
    percentage: float | None = None  # override of the phase's treatment percentage
    read_path: str | None = None  # override of the phase's treatment read path

    def describe(self, plan: Plan) -> str:
        f = plan.phase(self.phase).flags
        pct = f.treatment.percentage if self.percentage is None else self.percentage
        return (
            f"phase {self.phase}: treatment reads {self.read_path or f.read_path}, {pct:g} % "
            f"{'+ internal ' if f.treatment.internal else ''}treated, writes {f.write_mode}, "
            f"kill switch {'ON' if self.kill_switch else 'off'}"
        )

    def effective_flags(self, plan: Plan) -> PhaseFlags:
        """The phase's flags with this state's overrides applied (the treatment percentage is
        validated as the plan's own is)."""
        flags = plan.phase(self.phase).flags
        if self.percentage is None and self.read_path is None:
            return flags
        treatment = Treatment(
            internal=flags.treatment.internal,
            percentage=flags.treatment.percentage if self.percentage is None else self.percentage,
        )
        return flags.model_copy(update={"treatment": treatment, "read_path": self.read_path or flags.read_path})


@dataclass(frozen=True)
class Change:
    """Who changed the flags and why, carried in the flag set's metadata (so in the FeatureFlag):
    the next tool (the Pulumi program, the gateway, on-call) reads the last change from the flags."""

    by: str  # controller | manual
    reason: str
    rollback_level: str = ""  # immediate | partial | full when the change is a rollback
    forced: bool = False
    at: float = field(default_factory=time.time)
    phase_since: float | None = None  # when the phase began (a phase change or a rollback starts it anew)

    def metadata(self) -> dict[str, Any]:
        return {
            **({} if self.phase_since is None else {"phaseSince": round(self.phase_since, 3)}),
            "changedAt": round(self.at, 3),
            "changedBy": self.by,
            "changeReason": self.reason,
            "rollbackLevel": self.rollback_level,
            "changeForced": self.forced,
        }


def render_state(plan: Plan, state: FlagState, stack: str, change: Change | None = None) -> dict[str, Any]:
    """The flag set for a state: the phase's flags with the overrides applied, one renderer for all."""
    flags = state.effective_flags(plan)
    doc = render_flags(plan, state.phase, stack, kill_switch=state.kill_switch, flags=flags)
    doc["metadata"].update(
        {
            "percentageOverride": -1 if state.percentage is None else state.percentage,
            "readPathOverride": state.read_path or "",
            **(change.metadata() if change else {}),
        }
    )
    return doc


class FlagStateError(ValueError):
    """The flag set does not say which state it is in (not written by cutover, or damaged)."""


def state_of(doc: dict[str, Any]) -> FlagState:
    m = doc.get("metadata", {}) if isinstance(doc, dict) else None
    if not isinstance(m, dict) or not isinstance(m.get("phase"), str):
        raise FlagStateError("the flag set has no metadata.phase: not written by cutover, or damaged")
    pct = m.get("percentageOverride", -1)
    if pct not in (-1, None) and (isinstance(pct, bool) or not isinstance(pct, int | float)):
        raise FlagStateError("metadata.percentageOverride is not a number")
    return FlagState(
        m["phase"],
        bool(m.get("killSwitch")),
        None if pct in (-1, None) else float(pct),
        m.get("readPathOverride") or None,
    )


def phase_since(doc: dict[str, Any] | None) -> float | None:
    """When the flag set's phase began (epoch seconds), as its last change recorded it; None when no
    change recorded it (a flag set rendered by `cutover render`, or written before this was kept)."""
    m = doc.get("metadata") if isinstance(doc, dict) else None
    v = m.get("phaseSince") if isinstance(m, dict) else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def flag_doc_problem(plan: Plan, raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(the flag document, None) when `raw` is a flag file the gateway can serve from, else (None, why):
    valid JSON, a `flags` object holding the plan's three flags (and the phase flag, if it is there),
    each with a state, variants of the right type and values, and a defaultVariant among them."""
    if not raw.strip():
        return None, "the file is empty"
    try:
        doc = json.loads(raw)
    except RecursionError:
        return None, "malformed JSON: nested too deep"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"malformed JSON: {str(exc).splitlines()[0][:200]}"
    if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
        return None, "no `flags` object"
    keys = plan.flag_keys
    allowed: dict[str, tuple[Any, ...]] = {
        keys.kill_switch: (True, False),
        keys.read_path: READ_PATHS,
        keys.write_mode: tuple(WRITE_ORDER),
    }
    if keys.phase in doc["flags"]:  # optional: flag sets rendered before it lack it
        allowed[keys.phase] = tuple(plan.phase_names)
    for key, values in allowed.items():
        flag = doc["flags"].get(key)
        where = f"flags.{key}"
        if not isinstance(flag, dict):
            return None, f"{where}: missing"
        if flag.get("state") not in ("ENABLED", "DISABLED"):
            return None, f"{where}.state: not ENABLED or DISABLED"
        variants = flag.get("variants")
        if not isinstance(variants, dict) or not variants:
            return None, f"{where}.variants: missing or empty"
        for name_, value in variants.items():
            if type(value) is not type(values[0]) or value not in values:
                return None, f"{where}.variants.{name_}: {value!r} is not one of {list(values)}"
        if flag.get("defaultVariant") not in variants:
            return None, f"{where}.defaultVariant: not one of the variants"
        if "targeting" in flag and not isinstance(flag["targeting"], dict):
            return None, f"{where}.targeting: not an object"
    if not isinstance(doc.get("$evaluators", {}), dict):
        return None, "$evaluators: not an object"
    return doc, None
