"""The store a URI names: `sqlite:PATH` (legacy or MemoryOS) or `http(s)://...`."""

from __future__ import annotations

from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.remote import HttpStore


def open_store(uri: str, kind: str, autocheckpoint: bool = True) -> HttpStore | LegacyStore | MemoryOSStore:
    """`sqlite:PATH` or `http(s)://…` -> a store of the given kind (legacy | memoryos)."""
    if uri.startswith(("http://", "https://")):
        return HttpStore(kind, uri)
    path = uri.removeprefix("sqlite:")
    return (LegacyStore if kind == "legacy" else MemoryOSStore)(path, autocheckpoint=autocheckpoint)
