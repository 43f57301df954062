"""What a migration run is asked to do: its options, its source and target URIs, its shard, and the
key that names the run (a resume finds its checkpoint by it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cutover.migration.counts import Counts
from cutover.migration.tiering import Policy
from cutover.plan.errors import CutoverError

CHUNK_RECORDS = 5000  # records a worker prepares at a time; a batch (one transaction) spans several


class MigrationError(CutoverError):
    """The migration cannot go on (bad URI, halted on a bad record)."""


def parse_uri(uri: str) -> tuple[str, Path]:
    kind, sep, path = uri.partition(":")
    if not sep or kind not in ("jsonl", "sqlite") or not path:
        raise MigrationError(f"unknown URI {uri!r}", fix="use jsonl:PATH or sqlite:PATH")
    return kind, Path(path)


def shard_of(namespace: str, n: int) -> int:
    return int.from_bytes(hashlib.blake2b(namespace.encode(), digest_size=8).digest(), "big") % n


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise MigrationError(f"bad shard {text!r}", fix="write --shard i/n, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise MigrationError(f"bad shard {text!r}: need 0 <= i < n", fix="e.g. --shard 3/4 is the last of four")
    return i, n


@dataclass
class Options:
    source: str
    target: str
    policy: Policy
    namespaces: list[str] | None = None
    shard: tuple[int, int] | None = None
    batch: int = 20000
    dry_run: bool = False
    on_error: str = "quarantine"
    quarantine: Path | None = None
    restart: bool = False
    defer_index: bool = False
    as_of: int | None = None  # epoch ms the age rules count from (None: the run's start)
    progress: Callable[[Counts, int], None] | None = None  # (counts, source bytes done or records)
    workers: int | None = None  # processes preparing records (JSONL sources); None: one per core
    chunk: int = CHUNK_RECORDS  # records prepared at a time (a batch spans batch / chunk of them)


def run_key(o: Options) -> str:
    blob = json.dumps([o.source, o.target, sorted(o.namespaces or []), o.shard, o.policy.digest])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]
