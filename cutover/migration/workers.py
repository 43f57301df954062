"""Preparing records: check, filter, classify and backfill them a chunk at a time, in worker processes
(forked, dying with the migration) for a JSONL source; rows come back packed as a SQLite database."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from cutover.migration.build import Builder
from cutover.migration.counts import Counts
from cutover.migration.options import Options, shard_of
from cutover.migration.sources import Item
from cutover.migration.tiering import Policy
from cutover.store.records import record_problem
from cutover.store.rows import COLUMNS, N_COLUMNS

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

T = TypeVar("T")


# -- preparing records (pure; runs in worker processes for JSONL sources) -----------------------------
@dataclass(frozen=True)
class ChunkSpec:
    """What a worker needs to prepare records exactly as the main process would."""

    source: str
    policy: Policy
    as_of: int
    namespaces: list[str] | None
    shard: tuple[int, int] | None
    on_error: str
    rows: bool  # row tuples for a SQLite target, record dicts otherwise


@dataclass
class Chunk:
    out: list[Any] | PackedRows  # rows or record dicts, in source order (rows may come packed, see _packed)
    quarantined: list[bytes]
    counts: Counts
    position: str | None  # where to resume after this chunk
    halted: tuple[str, str] | None = None  # (where, reason) of the record that stopped the run


_worker: dict[str, Any] = {}


def _init_worker(spec: ChunkSpec) -> None:
    _worker["spec"] = spec
    _worker["builder"] = Builder(spec.policy, spec.as_of)
    _worker["wanted"] = set(spec.namespaces) if spec.namespaces else None


class _Preparer:
    """Check, filter, classify and backfill records one by one into a Chunk."""

    def __init__(self) -> None:
        self.spec, self.builder, self.wanted = _worker["spec"], _worker["builder"], _worker["wanted"]
        self.counts = Counts()
        self.out: list[Any] = []
        self.quarantined: list[bytes] = []

    def take(self, obj: Any, error: str | None) -> str | None:
        """None when the record was prepared or skipped; otherwise the reason it was quarantined
        (the caller then calls quarantine() with where it was)."""
        counts = self.counts
        counts.read += 1
        reason = error or record_problem(obj)
        if reason is not None:
            return reason
        ns = obj["namespace"]
        if self.wanted is not None and ns not in self.wanted:
            return None
        shard = self.spec.shard
        if shard and shard_of(ns, shard[1]) != shard[0]:
            counts.skipped_other_shards += 1
            return None
        try:
            rec, tier, rule, kept = (self.builder.row if self.spec.rows else self.builder.record)(obj)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # orjson's errors are ValueErrors
            return f"unstorable: {type(exc).__name__}: {str(exc)[:200]}"
        counts.migrated += 1
        counts.kept_existing_fields += kept
        counts.by_tier[tier] = counts.by_tier.get(tier, 0) + 1
        counts.by_rule[rule] = counts.by_rule.get(rule, 0) + 1
        self.out.append(rec)
        return None

    def quarantine(self, obj: Any, where: str, reason: str) -> bool:
        """Record a bad record; True when the run must halt on it."""
        counts = self.counts
        counts.quarantined += 1
        kind = reason.split(":")[0]
        counts.quarantine_reasons[kind] = counts.quarantine_reasons.get(kind, 0) + 1
        rid = obj.get("id") if isinstance(obj, dict) else None
        self.quarantined.append(json.dumps({"where": where, "id": rid, "reason": reason}).encode() + b"\n")
        halt: bool = self.spec.on_error == "halt"
        return halt

    def chunk(self, position: str | None, halted: tuple[str, str] | None = None) -> Chunk:
        return Chunk(self.out, self.quarantined, self.counts, position, halted)


def prepare_items(items: Iterable[Item]) -> Chunk:
    """A run of source items (from a store source)."""
    prep, position = _Preparer(), None
    for item in items:
        position = item.position
        reason = prep.take(item.obj, item.error)
        if reason is not None and prep.quarantine(item.obj, item.where, reason):
            return prep.chunk(position, (item.where, reason))
    return prep.chunk(position)


def prepare_jsonl_chunk(offset: int, line_no: int | None, data: bytes, pack: bool = False) -> Chunk:
    """A run of whole JSONL lines starting at byte `offset`. With `pack` (in a worker process), rows
    travel back as one serialized in-memory SQLite database rather than as pickled tuples: the
    writer then copies them with one INSERT ... SELECT, in C."""
    prep, loads, bad_json = _Preparer(), orjson.loads, orjson.JSONDecodeError
    for raw in data.splitlines(keepends=True):
        offset += len(raw)
        if line_no is not None:
            line_no += 1
        text = raw.strip()
        if not text:
            continue
        try:
            obj, error = loads(text), None
        except bad_json as exc:
            obj, error = None, f"malformed JSON: {str(exc).split(':')[0]}"
        reason = prep.take(obj, error)
        if reason is not None:
            where = f"line {line_no}" if line_no is not None else f"byte {offset - len(raw)}"
            if prep.quarantine(obj, where, reason):
                return _packed(prep.chunk(str(offset), (where, reason)), pack)
    return _packed(prep.chunk(str(offset)), pack)


PACKED_TABLE = "rows"


def _packed(chunk: Chunk, pack: bool) -> Chunk:
    if pack and chunk.out and _worker["spec"].rows:
        rows = chunk.out
        assert isinstance(rows, list)  # a chunk is packed once, straight after it is prepared
        mem = sqlite3.connect(":memory:")
        mem.execute(f"CREATE TABLE {PACKED_TABLE}({COLUMNS})")
        mem.executemany(f"INSERT INTO {PACKED_TABLE} VALUES ({','.join('?' * N_COLUMNS)})", rows)
        mem.commit()
        chunk.out = PackedRows(mem.serialize(), len(rows))
        mem.close()
    return chunk


@dataclass(frozen=True)
class PackedRows:
    """Rows as a serialized SQLite database with one table (see _packed)."""

    blob: bytes
    count: int

    def __len__(self) -> int:
        return self.count


def _batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def effective_workers(o: Options, src_kind: str) -> int:
    if src_kind != "jsonl":
        return 1  # a store source is read in key order by one reader
    return max(1, o.workers if o.workers is not None else min(4, os.cpu_count() or 1))


def _die_with_parent() -> None:
    """A worker ends when the migration's process does, even by kill -9 (Linux: PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != _worker.get("parent"):  # the parent died before the line above
        os._exit(1)


def _init_pool_worker(spec: ChunkSpec) -> None:
    _die_with_parent()
    _init_worker(spec)


def _pool(workers: int, spec: ChunkSpec) -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _worker["parent"] = os.getpid()

    # fork, before the target is opened: the workers share the parent's imported code (copy on
    # write) and hold no database handle; they only compute, print nothing and leave by os._exit
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_pool_worker, initargs=(spec,)
    )
    pool.submit(int).result()  # with fork, the first task starts every worker: now, not later
    return pool


def _ordered(
    pool: ProcessPoolExecutor, chunks: Iterable[tuple[int, int | None, bytes]], workers: int
) -> Iterator[Chunk]:
    """Prepare chunks in the pool, a few ahead, and yield them in source order."""
    from collections import deque

    pending: deque[Future[Chunk]] = deque()
    for c in chunks:
        pending.append(pool.submit(prepare_jsonl_chunk, *c, pack=True))
        if len(pending) > workers + 1:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
