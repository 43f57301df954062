"""Where the flags live and how a state is written there: one interface (`FlagBackend`, read and
write a flag set), the embedded default (`FlagFile`, the flag file the gateway re-reads), and
`apply_state`, which writes a state and reads it back. The FeatureFlag object of a cluster is the
other back end (`cutover.ops.featureflag`: it needs the Kubernetes client).

Writes are a compare-and-swap: `read_versioned()` gives the flag set with the version it was read at
(a `Snapshot`), and a write that names that version (`expect=`) is refused with `FlagsChangedError`
when the flags changed since, so that two writers (a person and the controller) never overwrite each
other unseen. The version is the back end's: the FeatureFlag's `metadata.resourceVersion`, the flag
file's content hash (which covers the change its metadata records, `changedAt`, and any hand edit).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cutover.flags.state import Change, FlagState, FlagStateError, render_state
from cutover.plan.errors import CutoverError, FlagsChangedError
from cutover.plan.model import Plan


@dataclass(frozen=True)
class Snapshot:
    """A flag set as read, and the version it was read at: the version a write names (`expect=`)."""

    version: str
    doc: dict[str, Any] | None  # None: there, but not a JSON flag set (`problem` says why)
    problem: str = ""

    def flags(self) -> dict[str, Any]:
        """The flag set; raises FlagStateError when it is unreadable."""
        if self.doc is None:
            raise FlagStateError(self.problem)
        return self.doc


class FlagBackend(Protocol):
    def read(self) -> dict[str, Any]: ...
    def read_versioned(self) -> Snapshot: ...
    def write(self, doc: dict[str, Any], expect: str | None = None) -> Snapshot:
        """Replace the flag set; with `expect` (a Snapshot's version) only if the flags are still at
        that version, else raise FlagsChangedError and write nothing. Returns the flag set as stored
        by this write, and its new version."""
        ...


def changed_since(doc: dict[str, Any] | None, show: str) -> FlagsChangedError:
    """The refusal of a write: who changed the flags meanwhile, when and why (the metadata of the
    flag set now), and how to go on. `show`: the `cutover flags` options naming the flag source."""
    m = doc.get("metadata") if isinstance(doc, dict) else None
    m = m if isinstance(m, dict) else {}
    at = m.get("changedAt")
    when = (
        datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        if isinstance(at, int | float) and not isinstance(at, bool)
        else "an unrecorded time"
    )
    who = m.get("changedBy") or "a writer that recorded no change"
    why = f" (reason: {m['changeReason']})" if m.get("changeReason") else ""
    return FlagsChangedError(
        "the flags changed since they were read, so this change was not written; "
        f"the last change they record: by {who} at {when}{why}",
        fix=f"read the flags again: `cutover flags {show}` shows them, then repeat the change",
    )


class FlagFile:
    """The embedded default: the flagd flag file the gateway re-reads on change (atomic replace).
    A write takes an exclusive lock (`flock` on FILE.lock beside it), checks the version, replaces
    the file and reads it back while it holds the lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict[str, Any]:
        return self.read_versioned().flags()

    def read_versioned(self) -> Snapshot:
        raw = self.path.read_bytes()
        version = "sha256:" + hashlib.sha256(raw).hexdigest()
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
            why = f"{self.path}: not a JSON flag set ({str(exc).splitlines()[0][:120]})"
            return Snapshot(version, None, why)
        if not isinstance(doc, dict):
            return Snapshot(version, None, f"{self.path}: not a JSON flag set (not an object)")
        return Snapshot(version, doc)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The writers' exclusive lock (readers need none: the file is replaced atomically)."""
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write(self, doc: dict[str, Any], expect: str | None = None) -> Snapshot:
        with self.locked():
            if expect is not None:
                try:
                    now = self.read_versioned()
                except FileNotFoundError:
                    now = Snapshot("absent", None, f"{self.path}: deleted")
                if now.version != expect:
                    raise changed_since(now.doc, f"--flags-file {self.path}")
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=2) + "\n")
            os.replace(tmp, self.path)
            return self.read_versioned()


def apply_state(
    backend: FlagBackend,
    plan: Plan,
    state: FlagState,
    stack: str,
    change: Change | None = None,
    *,
    expect: str | None = None,
) -> Snapshot:
    """Write (refused when `expect` is given and the flags changed since), and verify the flag set
    as stored (a server may prune what its schema does not know); raises when it differs."""
    doc = render_state(plan, state, stack, change)
    stored = backend.write(doc, expect=expect)
    if stored.flags().get("flags") != doc["flags"]:
        raise CutoverError(
            "the flags as stored differ from what was written (a schema that prunes fields?)",
            fix="read them (cutover flags without a change) and compare with `cutover render`",
        )
    return stored
