"""How the flags change: one `change()` that `cutover flags` and the rollback controller both call,
and what a rollback is (`rolled_back`: one level back from a state; `rollback_level`: which level a
change is; the rollback log `cutover reconcile --after-rollback` reads).

The levels (the plan's `RollbackLevel`):
- immediate: the kill switch (everyone reads legacy);
- partial: the treatment percentage of the previous phase (half the current one if none is lower);
- full: the previous phase's flags.

Which move a change is and what one level back is are the campaign state machine's answers
(`cutover.plan.campaign`); whether a forward move's gate is open is the judge's
(`cutover.judge.evidence.check_transition`, a layer above this one): the caller hands it in as the
`gate` callable. A callable rather than a verdict computed beforehand, because only `change()` knows
whether the move is a rollback (never gated) and the gate is asked only when it is not: the evidence
is loaded only then, so a rollback never waits on, or fails for, evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args

from cutover.flags.backend import FlagBackend, Snapshot, apply_state
from cutover.flags.state import Change, FlagState, phase_since
from cutover.plan.campaign import Campaign
from cutover.plan.errors import TransitionError
from cutover.plan.model import Plan, RollbackLevel

ROLLBACK_LEVELS: tuple[str, ...] = get_args(RollbackLevel)  # immediate, partial, full: the plan lists them

Gate = Callable[[str, str], object]
"""gate(current phase, target phase): raises TransitionError when the move is not allowed."""


def rolled_back(plan: Plan, state: FlagState, level: str) -> FlagState:
    """One rollback level back from `state`, as the campaign defines it."""
    if level == "immediate":
        return FlagState(state.phase, True, state.percentage, state.read_path)
    campaign = Campaign(plan)
    if level == "full":
        return FlagState(campaign.previous(state.phase), state.kill_switch)
    lower = campaign.lower_percentage(state.phase, campaign.percentage(state.phase, state.percentage))
    return FlagState(state.phase, state.kill_switch, lower, state.read_path)


def rollback_level(plan: Plan, before: FlagState, after: FlagState) -> str:
    """Which rollback a flag change is ("" when it is none): the kill switch turned on, a step back
    to an earlier phase, or less treatment (a lower percentage, or reads back to legacy)."""
    if after.kill_switch and not before.kill_switch:
        return "immediate"
    campaign = Campaign(plan)
    if campaign.is_back(before.phase, after.phase):
        return "full"

    def pct(s: FlagState) -> float:
        return campaign.percentage(s.phase, s.percentage)

    def path(s: FlagState) -> str:
        return s.read_path or plan.phase(s.phase).flags.read_path

    if after.phase == before.phase and (pct(after) < pct(before) or (path(after) == "legacy" != path(before))):
        return "partial"
    return ""


def as_far_back(plan: Plan, state: FlagState, target: FlagState) -> bool:
    """Whether `state` is already as far back as `target` (writing `target` over it would take
    nothing back): what the controller asks when another change came first. The kill switch
    already sends everyone to legacy, so less treatment takes nothing back from it."""
    level = rollback_level(plan, state, target)
    return not level or (level == "partial" and state.kill_switch)


@dataclass
class Rollback:
    at: float
    trigger: str
    level: str
    before: str
    after: str
    labels: dict[str, Any] = field(default_factory=dict)


def log_rollback(path: Path, rollback: Rollback) -> None:
    """One line of the rollback log (JSON lines): `cutover reconcile --after-rollback` reads the last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rollback.__dict__) + "\n")


def target_state(
    plan: Plan,
    state: FlagState,
    *,
    phase: str | None = None,
    kill_switch: bool | None = None,
    percentage: float | None = None,
    read_path: str | None = None,
) -> FlagState:
    """The state asked for: a named phase starts from that phase's own flags; each setting given
    replaces the one in force, the others stay."""
    if phase is not None:
        plan.index(phase)
        state = FlagState(phase)
    return FlagState(
        state.phase,
        state.kill_switch if kill_switch is None else kill_switch,
        state.percentage if percentage is None else percentage,
        state.read_path if read_path is None else read_path,
    )


@dataclass(frozen=True)
class Applied:
    """A change written and verified: the states before and after, the change recorded, and the
    flag set as stored with its version (what the next write of the flags names)."""

    before: FlagState
    after: FlagState
    change: Change
    stored: Snapshot

    @property
    def doc(self) -> dict[str, Any]:
        return self.stored.flags()

    @property
    def level(self) -> str:
        return self.change.rollback_level

    def rollback(self, plan: Plan, trigger: str, labels: dict[str, Any]) -> Rollback:
        """The rollback log's line for this change."""
        return Rollback(
            self.change.at, trigger, self.level, self.before.describe(plan), self.after.describe(plan), labels
        )


def change(
    backend: FlagBackend,
    plan: Plan,
    stack: str,
    before: FlagState,
    after: FlagState,
    *,
    seen: Snapshot,
    by: str,
    reason: str | None = None,
    level: str | None = None,
    gate: Gate | None = None,
    force: bool = False,
    warn: Callable[[str], object] = lambda message: None,
    at: float | None = None,
) -> Applied:
    """Move the flags from `before` to `after`: write, read back, verify, and record who and why in
    the flags' metadata.

    `seen`: the read the caller decided from (`backend.read_versioned()`). The write is refused
    with FlagsChangedError, and nothing written, when the flags changed since (another writer).

    `reason`: recorded with the change ("rollback" or "change" when None). `level`: the rollback
    level when the caller asked for one (the controller); otherwise `rollback_level` works it out.
    A change that is no rollback asks `gate` first (when given); a closed gate raises its
    TransitionError, unless `force`, which records the change as forced and says so through `warn`."""
    level = rollback_level(plan, before, after) if level is None else level
    forced = False
    if not level and gate is not None:
        try:
            gate(before.phase, after.phase)
        except TransitionError as exc:
            if not force:
                raise
            forced = True
            warn(f"FORCED past a closed gate ({exc.message}): {reason}")
    record = Change(by, ("rollback" if level else "change") if reason is None else reason, level, forced)
    if at is not None:
        record = replace(record, at=at)
    # The phase begins anew with a change of phase or a rollback; any other change keeps its start.
    # An unreadable flag set (no doc) starts the phase anew too: the write replaces it.
    since = None if (level or after.phase != before.phase) else phase_since(seen.doc)
    record = replace(record, phase_since=record.at if since is None else since)
    stored = apply_state(backend, plan, after, stack, record, expect=seen.version)
    return Applied(before, after, record, stored)
