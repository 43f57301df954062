"""The campaign state machine: the one place that knows how phases follow each other.

It answers, from the plan alone: which moves are allowed from a phase (the first deployment, a
re-apply, one phase forward through its gate, back to any earlier phase), what a forward move needs
(the evidence kinds the phase being left lists in `exit_evidence`, and its `min_duration` spent in
it), and what one rollback level back is (the kill switch; the previous ramp's percentage; the
previous phase). Whether the evidence passes is the judge's question (`cutover.judge.evidence`);
whether the flags change is the flags' (`cutover.flags.change`). The Pulumi program, `cutover flags`,
`cutover gate`, `cutover plan transition`, the controller and the rehearsal all ask here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from cutover.plan.durations import readable_duration
from cutover.plan.errors import TransitionError
from cutover.plan.model import EvidenceKind, Plan

Direction = Literal["start", "stay", "forward", "back"]


@dataclass(frozen=True)
class PhaseClock:
    """When the phase being left began (None: unknown, as in a flag set no change recorded), the time
    now (None: the wall clock), and how much the minimum durations are compressed (the rehearsal's)."""

    since: float | None = None
    now: float | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class Requirement:
    """What entering `target` from `leaving` needs: passing evidence of each kind, collected in
    `leaving`, and `min_duration_s` seconds spent in `leaving` (its start: the flags' last phase change)."""

    leaving: str
    target: str
    evidence: tuple[EvidenceKind, ...]
    min_duration_s: float

    def time_left(self, clock: PhaseClock) -> float | None:
        """Seconds still to spend in the phase (0: done), or None when its start is unknown."""
        if clock.since is None:
            return None
        now = time.time() if clock.now is None else clock.now
        return max(0.0, self.min_duration_s / clock.scale - (now - clock.since))

    def describe_wait(self, left: float) -> str:
        return (
            f"phase {self.leaving!r} has a minimum duration of {readable_duration(self.min_duration_s)}: "
            f"{readable_duration(left)} left"
        )


@dataclass(frozen=True)
class Move:
    current: str | None  # None: nothing deployed yet
    target: str
    direction: Direction
    requirement: Requirement | None = None  # a forward move's gate; None for every other move

    @property
    def is_rollback(self) -> bool:
        return self.direction == "back"


class Campaign:
    """The plan's phases as a state machine."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.phases: tuple[str, ...] = tuple(plan.phase_names)

    @property
    def first(self) -> str:
        return self.phases[0]

    def index(self, phase: str) -> int:
        return self.plan.index(phase)  # an unknown phase: PlanError naming the known ones

    def next(self, phase: str) -> str | None:
        i = self.index(phase)
        return self.phases[i + 1] if i + 1 < len(self.phases) else None

    def previous(self, phase: str) -> str:
        """One phase back (the first phase is its own previous)."""
        return self.phases[max(self.index(phase) - 1, 0)]

    def is_back(self, current: str, target: str) -> bool:
        return self.index(target) < self.index(current)

    def requirement(self, target: str) -> Requirement | None:
        """The gate into `target` (None for the first phase, which has none)."""
        i = self.index(target)
        if i == 0:
            return None
        leaving = self.plan.phases[i - 1]
        return Requirement(leaving.name, target, tuple(leaving.exit_evidence), leaving.min_duration)

    def move(self, current: str | None, target: str) -> Move:
        """The move from `current` to `target`, or TransitionError when no such move exists (a first
        deployment past the first phase, a jump of more than one phase forward). A forward move
        carries its requirement; meeting it is the caller's check."""
        t = self.index(target)
        if current is None:
            if t != 0:
                raise TransitionError(
                    f"cannot start the campaign at {target!r}",
                    field="phase",
                    fix=f"the first deployment must be phase {self.first!r}",
                )
            return Move(None, target, "start")
        c = self.index(current)
        if t == c:
            return Move(current, target, "stay")
        if t < c:
            return Move(current, target, "back")
        if t > c + 1:
            raise TransitionError(
                f"cannot jump from {current!r} to {target!r}: phases advance one at a time",
                field="phase",
                fix=f"set the phase to {self.phases[c + 1]!r} first, or back to an earlier one",
            )
        return Move(current, target, "forward", self.requirement(target))

    def moves(self, current: str | None) -> list[Move]:
        """Every move allowed from `current` (the forward one still needs its requirement met)."""
        if current is None:
            return [Move(None, self.first, "start")]
        return [self.move(current, p) for p in self.phases[: self.index(current) + 2]]

    def exit_evidence(self, phase: str) -> tuple[EvidenceKind, ...]:
        """The evidence a phase must produce before the next one (what the rehearsal collects in it)."""
        return tuple(self.plan.phase(phase).exit_evidence)

    # -- one rollback level back -------------------------------------------------------------------
    def percentage(self, phase: str, override: float | None = None) -> float:
        return self.plan.phase(phase).flags.treatment.percentage if override is None else override

    def lower_percentage(self, phase: str, current: float) -> float:
        """A partial rollback's treatment percentage: the highest earlier ramp's below `current`
        (half of `current` when no earlier phase reads MemoryOS with less)."""
        lower = [
            p.flags.treatment.percentage
            for p in self.plan.phases[: self.index(phase)]
            if p.flags.read_path == "memoryos" and p.flags.treatment.percentage < current
        ]
        return max(lower) if lower else current / 2
