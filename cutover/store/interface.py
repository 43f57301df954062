"""What every store answers: the `Store` protocol, and `StoreError` when it cannot."""

from __future__ import annotations

from typing import Protocol

from cutover.store.records import RecallQuery, Record


class StoreError(Exception):
    """A store could not serve the request (outage, injected fault, remote error)."""


class Store(Protocol):
    name: str

    def put(self, rec: Record, auto_version: bool = False) -> Record: ...
    def get(self, namespace: str, id: str) -> Record | None: ...
    def delete(self, namespace: str, id: str) -> bool: ...
    def recall(self, q: RecallQuery) -> list[Record]: ...
    def ping(self) -> None: ...
