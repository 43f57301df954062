"""User-facing errors: what is wrong, where (file, line, field path) and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CutoverError(Exception):
    """An error caused by the user's input. The CLI prints it without a traceback and exits 2."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    fix: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        head = ": ".join(p for p in (where, self.field, self.message) if p)
        return head + (f"\n  fix: {self.fix}" if self.fix else "")


class PlanError(CutoverError):
    """The rollout plan is invalid."""


class StackError(CutoverError):
    """A stack's configuration is missing or invalid."""


class TransitionError(CutoverError):
    """A phase change the plan does not allow, or whose gate has no passing evidence."""


class EvidenceError(CutoverError):
    """A gate evidence file is unreadable or invalid."""


class FlagsChangedError(CutoverError):
    """A write of the flags refused: they changed since the writer read them (another writer, a
    person or the controller, wrote in between). Nothing was written."""
