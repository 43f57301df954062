"""Injected faults for drills: a store wrapped with latency, an error rate, an outage."""

from __future__ import annotations

import threading
import time
from typing import Any, TypedDict

from cutover.store.interface import StoreError
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import RecallQuery, Record
from cutover.store.remote import HttpStore
from cutover.store.rows import Row
from cutover.store.sqlite import SqliteStore


class FaultState(TypedDict):
    """The faults injected into a store (`FaultyStore.set`'s arguments)."""

    latency_ms: float
    error_rate: float
    outage: bool


class FaultyStore:
    """Wraps a store with injected faults for drills: added latency, an error rate, a full outage."""

    def __init__(self, inner: LegacyStore | MemoryOSStore | HttpStore, seed: int = 0) -> None:
        import random

        self.inner, self.name = inner, inner.name
        self.latency_ms, self.error_rate, self.outage = 0.0, 0.0, False
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def set(self, latency_ms: float = 0.0, error_rate: float = 0.0, outage: bool = False) -> None:
        self.latency_ms, self.error_rate, self.outage = latency_ms, error_rate, outage

    def state(self) -> FaultState:
        return {"latency_ms": self.latency_ms, "error_rate": self.error_rate, "outage": self.outage}

    deadline = threading.local()  # set by the gateway around a call with a time budget

    def _fault(self) -> None:
        if self.outage:
            raise StoreError(f"{self.name}: outage (injected)")
        if self.latency_ms:
            budget = getattr(self.deadline, "at", None)
            delay = self.latency_ms / 1000
            if budget is not None and time.monotonic() + delay > budget:
                time.sleep(max(0.0, budget - time.monotonic()))
                raise StoreError(f"{self.name}: timeout")
            time.sleep(delay)
        if self.error_rate:
            with self._lock:
                hit = self._rng.random() < self.error_rate
            if hit:
                raise StoreError(f"{self.name}: error (injected)")

    def put(self, rec: Record, auto_version: bool = False, mirror_to: str | None = None) -> Record:
        self._fault()
        if mirror_to:
            return self.sqlite.put(rec, auto_version, mirror_to)
        return self.inner.put(rec, auto_version)

    def put_many(self, records: list[Record]) -> int:
        """One transaction in a SQLite store; one call a record in a remote one (its API has no batch)."""
        self._fault()
        if isinstance(self.inner, SqliteStore):
            return self.inner.put_many(records)
        for rec in records:
            self.inner.put(rec)
        return len(records)

    def get(self, namespace: str, id: str) -> Record | None:
        self._fault()
        return self.inner.get(namespace, id)

    def get_rows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        self._fault()
        return self.sqlite.get_rows(keys)

    def put_rows(self, rows: list[Row]) -> int:
        self._fault()
        return self.sqlite.put_rows(rows)

    def delete(self, namespace: str, id: str, mirror_to: str | None = None) -> bool:
        self._fault()
        if mirror_to:
            return self.sqlite.delete(namespace, id, mirror_to)
        return self.inner.delete(namespace, id)

    @property
    def local(self) -> bool:
        """True when writes can enqueue their mirror row atomically (a SQLite store)."""
        return isinstance(self.inner, SqliteStore)

    @property
    def sqlite(self) -> SqliteStore:
        """The SQLite store inside, for what only a local store does (rows, a mirror row in the same
        transaction); callers ask `local` first, so a remote store here is a programming error."""
        if not isinstance(self.inner, SqliteStore):
            raise TypeError(f"{self.name} is a remote store: rows and in-store mirror rows need a SQLite one")
        return self.inner

    def recall(self, q: RecallQuery) -> list[Record]:
        self._fault()
        return self.inner.recall(q)

    def observe(self, q: RecallQuery) -> list[Record]:
        """A recall that changes nothing (shadow reads): MemoryOS skips its heat update."""
        self._fault()
        if isinstance(self.inner, MemoryOSStore):
            return self.inner.recall(q, touch=False)
        return self.inner.recall(q)

    def ping(self) -> None:
        self._fault()
        self.inner.ping()

    def __getattr__(self, attr: str) -> Any:  # count, scan, namespaces, checkpoint: no faults (admin and tooling)
        return getattr(self.inner, attr)
