"""Where the flags live and how a state is written there: one interface (`FlagBackend`, read and
write a flag set), the embedded default (`FlagFile`, the flag file the gateway re-reads), and
`apply_state`, which writes a state and reads it back. The FeatureFlag object of a cluster is the
other back end (`cutover.ops.featureflag`: it needs the Kubernetes client)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from cutover.flags.state import Change, FlagState, FlagStateError, render_state
from cutover.plan.errors import CutoverError
from cutover.plan.model import Plan


class FlagBackend(Protocol):
    def read(self) -> dict[str, Any]: ...
    def write(self, doc: dict[str, Any]) -> None: ...


class FlagFile:
    """The embedded default: the flagd flag file the gateway re-reads on change (atomic replace)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.path.read_bytes())
            return doc
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
            raise FlagStateError(f"{self.path}: not a JSON flag set ({str(exc).splitlines()[0][:120]})") from None

    def write(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.path)


def apply_state(
    backend: FlagBackend, plan: Plan, state: FlagState, stack: str, change: Change | None = None
) -> dict[str, Any]:
    """Write, then read back and verify; raises when the read-back differs."""
    doc = render_state(plan, state, stack, change)
    backend.write(doc)
    back = backend.read()
    if back.get("flags") != doc["flags"]:
        raise CutoverError(
            "the flags read back differ from what was written: another writer?",
            fix="read them (cutover flags without a change) and retry",
        )
    return back
