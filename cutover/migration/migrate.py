"""Migration: legacy records -> MemoryOS, classified into tiers, with lifecycle and provenance backfilled.

Sources and targets are URIs: `jsonl:PATH` (an export, one JSON object a line) or `sqlite:PATH` (a
store: a source is read as legacy, a target written as MemoryOS). Work goes in batches; after each
batch a durable checkpoint records the source position, in the target's own transaction for a
SQLite target (so a crash leaves neither a duplicate nor a gap), or beside a JSONL target with its
byte offset (the target is cut back to it on resume). Bad records go to a quarantine file with
their line or id and reason and never stop the run unless on_error="halt".
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from cutover.migration.build import Builder
from cutover.migration.tiering import Policy
from cutover.plan.errors import CutoverError
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import MAX_TEXT, now_ms, record_problem
from cutover.store.rows import COLUMNS, record_of_row, upsert_from_sql, upsert_sql

CACHE_KIB = 64 * 1024  # SQLite page cache of the migration's writer
CHUNK_RECORDS = 5000  # records a worker prepares at a time; a batch (one transaction) spans several
WAL_PAGES_BULK = 65536  # checkpoint after this many WAL pages (256 MiB) in bulk mode (--defer-index)
WAL_PAGES = 8192  # and with the live index (32 MiB: readers, such as a gateway, search the WAL too)
CLASSES = frozenset({"episodic", "semantic", "procedural", "working"})
CHECKPOINTS = """
CREATE TABLE IF NOT EXISTS migration_checkpoints(
  run_key TEXT PRIMARY KEY, position TEXT NOT NULL, quarantine_offset INTEGER NOT NULL,
  counts TEXT NOT NULL, updated_at REAL NOT NULL, as_of INTEGER
);
"""


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


# -- record checks ---------------------------------------------------------------------------------
def problem(obj: object) -> str | None:
    """Why a source object is not a valid legacy record (None: it is). Exact types (what a JSON
    parser gives): the common case passes with one look at each field."""
    if type(obj) is not dict:
        return "not a JSON object"
    get = obj.get
    for key in ("id", "namespace"):
        v = get(key)
        if type(v) is not str or not v:
            return f"missing {key}" if v is None or v == "" else f"{key} is {type(v).__name__}, not a string"
    text = get("text", "")
    if type(text) is not str:
        return f"text is {type(text).__name__}, not a string"
    if len(text) > MAX_TEXT:
        return f"text of {len(text)} characters is over the limit of {MAX_TEXT}"
    cls = get("class", "episodic")
    if type(cls) is not str or cls not in CLASSES:
        return f"class {cls!r} is not one of {sorted(CLASSES)}"
    for key in ("kind", "source"):
        v = get(key)
        if v is not None and type(v) is not str:
            return f"{key} is {type(v).__name__}, not a string"
    tags = get("tags", [])
    if type(tags) is not list or any(type(t) is not str for t in tags):
        return "tags is not a list of strings"
    for key in ("observed_at", "expires_at", "version"):
        v = get(key)
        if v is not None and (type(v) is not int or v < 0):
            return f"{key} is not a non-negative integer (ms)"
    if type(get("metadata", {})) is not dict:
        return "metadata is not an object"
    return record_problem(obj)


# -- sources ---------------------------------------------------------------------------------------
@dataclass
class Item:
    position: str  # where to resume after this item
    where: str  # line N or id, for quarantine
    obj: object | None
    error: str | None = None


def jsonl_lines(data: bytes, offset: int, line_no: int | None) -> Iterator[Item]:
    """The records of a run of whole lines that starts at byte `offset` (line `line_no` + 1, if known)."""
    for raw in data.splitlines(keepends=True):
        offset += len(raw)
        if line_no is not None:
            line_no += 1
        where = f"line {line_no}" if line_no is not None else f"byte {offset - len(raw)}"
        text = raw.strip()
        if not text:
            continue
        try:
            yield Item(str(offset), where, orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            yield Item(str(offset), where, None, f"malformed JSON: {str(exc).split(':')[0]}")


def jsonl_chunks(path: Path, start: str | None, chunk_bytes: int) -> Iterator[tuple[int, int | None, bytes]]:
    """(offset, lines before it or None, whole lines) of about chunk_bytes each, from byte `start`.
    Byte-offset positions: a resume seeks straight to the next line (line numbers are then unknown)."""
    offset = int(start or 0)
    line_no = 0 if offset == 0 else None
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            data = f.read(chunk_bytes)
            if not data:
                return
            if not data.endswith(b"\n"):
                data += f.readline()
            yield offset, line_no, data
            offset += len(data)
            if line_no is not None:
                line_no += data.count(b"\n")


def jsonl_source(path: Path, start: str | None) -> Iterator[Item]:
    for offset, line_no, data in jsonl_chunks(path, start, 1 << 20):
        yield from jsonl_lines(data, offset, line_no)


def sqlite_source(path: Path, start: str | None, namespaces: set[str] | None) -> Iterator[Item]:
    if not path.is_file():
        raise MigrationError("no such store", file=str(path), fix="check the sqlite: path")
    store = LegacyStore(path)
    last = tuple(json.loads(start)) if start else ("", "")
    conn = store._conn()
    while True:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM records WHERE (namespace > ? OR (namespace = ? AND id > ?)) "
            "ORDER BY namespace, id LIMIT 5000",
            (last[0], last[0], last[1]),
        ).fetchall()
        if not rows:
            return
        for r in rows:
            last = (r["namespace"], r["id"])
            if namespaces is not None and r["namespace"] not in namespaces:
                continue
            yield Item(json.dumps(last), f"id {r['namespace']}/{r['id']}", record_of_row(r, foreign=True))


# -- targets ---------------------------------------------------------------------------------------
class SqliteTarget:
    """A MemoryOS store; the checkpoint row commits with each batch.

    defer_index: bulk mode. The full-text insert trigger is dropped for the run and the index is
    rebuilt in one pass at the end (about 5x faster). Until the rebuild, text search misses what
    was written meanwhile (by this run or a gateway mirroring into the store), so use it before
    MemoryOS serves reads. A crashed bulk run leaves the trigger off: run the command again, it
    resumes and finishes the rebuild."""

    rows = True  # write() takes row tuples

    def __init__(self, path: Path, defer_index: bool = False):
        self.store = MemoryOSStore(path)
        self.conn = self.store._conn()
        self.conn.executescript(CHECKPOINTS)
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(migration_checkpoints)")}
        if "as_of" not in cols:  # a store migrated before the as-of was recorded
            self.conn.execute("ALTER TABLE migration_checkpoints ADD COLUMN as_of INTEGER")
        self.as_of: int | None = None
        self.conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # fewer B-tree page reads per insert
        # WAL checkpoints (each with two fsyncs) every WAL_PAGES rather than SQLite's 1 000 pages: a
        # batch dirties pages all over the (namespace, id) index, which were copied back again and
        # again. The WAL file grows up to about WAL_PAGES x 4 KiB meanwhile; close() checkpoints it.
        self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES_BULK if defer_index else WAL_PAGES}")
        self.sql = upsert_sql(strictly_newer=True)
        # the same upsert from a packed chunk
        self.sql_select = upsert_from_sql(f"chunk.{PACKED_TABLE}", strictly_newer=True)
        self._attached = False
        self.defer_index = defer_index or not self._has_insert_trigger()
        if self.defer_index:
            with self.store._write:
                self.conn.execute("DROP TRIGGER IF EXISTS records_ai")
                self.conn.execute("DROP INDEX IF EXISTS records_recent")

    def _has_insert_trigger(self) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='records_ai'").fetchone()
            is not None
        )

    def finish(self) -> None:
        """Rebuild the full-text index and put the trigger back (bulk mode)."""
        if not self.defer_index:
            return
        from cutover.store.schema import SCHEMA

        with self.store._write:
            self.conn.execute("INSERT INTO records_fts(records_fts) VALUES('rebuild')")
            self.conn.executescript(SCHEMA)  # IF NOT EXISTS: recreates only the dropped trigger and index

    def checkpoint(self, run_key: str) -> dict | None:
        row = self.conn.execute(
            "SELECT position, quarantine_offset, counts FROM migration_checkpoints WHERE run_key=?", (run_key,)
        ).fetchone()
        return {"position": row[0], "quarantine_offset": row[1], "counts": json.loads(row[2])} if row else None

    def write(self, rows, run_key: str, position: str, q_offset: int, counts: Counts, commit: bool = True) -> None:
        """Upsert a chunk (rows from `row_of`, or PackedRows from a worker; a record already there at
        the same or a newer version is left as is, and counted unchanged) and the checkpoint, in the
        open transaction (begun here if none is); `commit` ends it. Several chunks may so share one
        transaction: the checkpoint row always names the position after the last of them."""
        c = self.conn
        with self.store._write:
            if isinstance(rows, PackedRows):
                if not self._attached:
                    c.execute("ATTACH DATABASE ':memory:' AS chunk")
                    self._attached = True
                c.deserialize(rows.blob, name="chunk")  # (also inside the open transaction: an in-memory schema)
            if not c.in_transaction:
                c.execute("BEGIN IMMEDIATE")
            try:
                if isinstance(rows, PackedRows):
                    cur = c.execute(self.sql_select)
                else:
                    cur = c.executemany(self.sql, rows)
                unchanged = len(rows) - max(cur.rowcount, 0)
                counts.unchanged += unchanged
                counts.migrated -= unchanged
                c.execute(
                    "INSERT OR REPLACE INTO migration_checkpoints"
                    "(run_key, position, quarantine_offset, counts, updated_at, as_of) VALUES (?,?,?,?,?,?)",
                    (run_key, position, q_offset, json.dumps(counts.as_dict()), time.time(), self.as_of),
                )
                if commit:
                    c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def commit(self) -> None:
        if self.conn.in_transaction:
            with self.store._write:
                self.conn.execute("COMMIT")

    def close(self) -> None:
        """After an error (the run stops between chunks): the open batch is rolled back, as a crash
        would, and the next run resumes from the last committed checkpoint."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.store.checkpoint()


class JsonlTarget:
    """A JSONL file of migrated records; the checkpoint file beside it records the byte offset."""

    rows = False  # write() takes record dicts

    def __init__(self, path: Path):
        self.path, self.ckpt = path, path.with_name(path.name + ".checkpoint.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "ab")
        self.as_of: int | None = None

    def checkpoint(self, run_key: str) -> dict | None:
        if not self.ckpt.is_file():
            return None
        data = json.loads(self.ckpt.read_text())
        if data.get("run_key") != run_key:
            return None
        self.f.truncate(data["target_offset"])  # drop what was written after the last checkpoint
        self.f.seek(0, os.SEEK_END)
        return data

    def write(
        self, records: list[dict], run_key: str, position: str, q_offset: int, counts: Counts, commit: bool = True
    ) -> None:
        """Append and checkpoint (each chunk: a file has no transaction to share)."""
        self.f.write(b"".join(json.dumps(d).encode() + b"\n" for d in records))
        self.f.flush()
        os.fsync(self.f.fileno())
        tmp = self.ckpt.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "run_key": run_key,
                    "position": position,
                    "quarantine_offset": q_offset,
                    "target_offset": self.f.tell(),
                    "counts": counts.as_dict(),
                    "as_of": self.as_of,
                }
            )
        )
        os.replace(tmp, self.ckpt)

    def commit(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self.f.close()


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class Counts:
    read: int = 0
    migrated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    skipped_other_shards: int = 0
    kept_existing_fields: int = 0
    by_tier: dict = field(default_factory=dict)
    by_rule: dict = field(default_factory=dict)
    quarantine_reasons: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return self.__dict__.copy()

    def merge(self, other: Counts) -> None:
        for k, v in other.__dict__.items():
            if isinstance(v, dict):
                mine = getattr(self, k)
                for kk, vv in v.items():
                    mine[kk] = mine.get(kk, 0) + vv
            else:
                setattr(self, k, getattr(self, k) + v)


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
    out: list | PackedRows  # rows or record dicts, in source order (rows may come packed, see _packed)
    quarantined: list[bytes]
    counts: Counts
    position: str | None  # where to resume after this chunk
    halted: tuple[str, str] | None = None  # (where, reason) of the record that stopped the run


_worker: dict = {}


def _init_worker(spec: ChunkSpec) -> None:
    _worker["spec"] = spec
    _worker["builder"] = Builder(spec.policy, spec.as_of)
    _worker["wanted"] = set(spec.namespaces) if spec.namespaces else None


class _Preparer:
    """Check, filter, classify and backfill records one by one into a Chunk."""

    def __init__(self):
        self.spec, self.builder, self.wanted = _worker["spec"], _worker["builder"], _worker["wanted"]
        self.counts, self.out, self.quarantined = Counts(), [], []

    def take(self, obj, error: str | None) -> str | None:
        """None when the record was prepared or skipped; otherwise the reason it was quarantined
        (the caller then calls quarantine() with where it was)."""
        counts = self.counts
        counts.read += 1
        reason = error or problem(obj)
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

    def quarantine(self, obj, where: str, reason: str) -> bool:
        """Record a bad record; True when the run must halt on it."""
        counts = self.counts
        counts.quarantined += 1
        kind = reason.split(":")[0]
        counts.quarantine_reasons[kind] = counts.quarantine_reasons.get(kind, 0) + 1
        rid = obj.get("id") if isinstance(obj, dict) else None
        self.quarantined.append(json.dumps({"where": where, "id": rid, "reason": reason}).encode() + b"\n")
        return self.spec.on_error == "halt"

    def chunk(self, position: str | None, halted: tuple[str, str] | None = None) -> Chunk:
        return Chunk(self.out, self.quarantined, self.counts, position, halted)


def prepare_items(items) -> Chunk:
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
        mem.executemany(f"INSERT INTO {PACKED_TABLE} VALUES ({','.join('?' * 15)})", rows)
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


def _batched(items, n: int):
    batch = []
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


def average_line_bytes(path: Path, start: str | None) -> int:
    with open(path, "rb") as f:
        f.seek(int(start or 0))
        sample = f.read(256 * 1024)
    return max(1, len(sample) // max(1, sample.count(b"\n")))


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


def _pool(workers: int, spec: ChunkSpec):
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


def _ordered(pool, chunks, workers: int):
    """Prepare chunks in the pool, a few ahead, and yield them in source order."""
    from collections import deque

    pending: deque = deque()
    for c in chunks:
        pending.append(pool.submit(prepare_jsonl_chunk, *c, pack=True))
        if len(pending) > workers + 1:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def checkpoint_as_of(target: str, run_key: str | None = None) -> int | None:
    """The as-of a migration into `target` recorded: that run's (`run_key`), or the latest run's.
    Read with a connection of its own, closed again (the migration forks its workers after this)."""
    kind, path = parse_uri(target)
    if not path.is_file():
        return None
    if kind == "jsonl":
        ckpt = path.with_name(path.name + ".checkpoint.json")
        if not ckpt.is_file():
            return None
        data = json.loads(ckpt.read_text())
        return data.get("as_of") if run_key is None or data.get("run_key") == run_key else None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(migration_checkpoints)")}
        if "as_of" not in cols:
            return None
        where, args = ("WHERE run_key = ? AND", (run_key,)) if run_key else ("WHERE", ())
        row = conn.execute(
            f"SELECT as_of FROM migration_checkpoints {where} as_of IS NOT NULL ORDER BY updated_at DESC LIMIT 1", args
        ).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def run_key(o: Options) -> str:
    blob = json.dumps([o.source, o.target, sorted(o.namespaces or []), o.shard, o.policy.digest])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def migrate(o: Options) -> dict:
    src_kind, src_path = parse_uri(o.source)
    dst_kind, dst_path = parse_uri(o.target)
    if src_kind == "jsonl" and not src_path.is_file():
        raise MigrationError("no such file", file=str(src_path), fix="check the jsonl: path")
    if o.on_error not in ("quarantine", "halt"):
        raise MigrationError(f"unknown --on-error {o.on_error!r}", fix="use quarantine or halt")
    key = run_key(o)
    started = time.monotonic()
    as_of = o.as_of if o.as_of is not None else now_ms()
    if not o.restart and not o.dry_run:
        began = checkpoint_as_of(o.target, key)  # a resumed run keeps the as-of it began with
        if began is not None:
            if o.as_of is not None and o.as_of != began:
                raise MigrationError(
                    f"this run began at as-of {began}, not {o.as_of}",
                    fix=f"resume with --as-of {began} (or without --as-of), or start over with --restart",
                )
            as_of = began
    builder = Builder(o.policy, as_of)
    spec = ChunkSpec(
        o.source,
        o.policy,
        as_of,
        o.namespaces,
        o.shard,
        o.on_error,
        rows=dst_kind == "sqlite" and not o.dry_run,
    )
    workers = effective_workers(o, src_kind)
    pool = _pool(workers, spec) if workers > 1 else None  # started before any file is opened
    target = (
        None
        if o.dry_run
        else (SqliteTarget(dst_path, o.defer_index) if dst_kind == "sqlite" else JsonlTarget(dst_path))
    )
    if target is not None:
        target.as_of = as_of
    qpath = o.quarantine or dst_path.with_name(dst_path.name + ".quarantine.jsonl")
    counts, position, q_offset, resumed, uncommitted = Counts(), None, 0, False, 0
    ckpt = target.checkpoint(key) if target and not o.restart else None
    if ckpt:
        position, q_offset, resumed = ckpt["position"], ckpt["quarantine_offset"], True
        counts = Counts(**ckpt["counts"])
    qfile = None
    if not o.dry_run:
        Path(qpath).parent.mkdir(parents=True, exist_ok=True)
        qfile = open(qpath, "ab")
        qfile.truncate(q_offset)
        qfile.seek(0, os.SEEK_END)
    if src_kind == "jsonl":
        chunk_bytes = max(4096, min(o.batch, o.chunk) * average_line_bytes(src_path, position))
        chunks = jsonl_chunks(src_path, position, chunk_bytes)
        if pool is not None:
            results = _ordered(pool, chunks, workers)
        else:
            _init_worker(spec)
            results = (prepare_jsonl_chunk(*c) for c in chunks)
    else:
        wanted = set(o.namespaces) if o.namespaces else None
        _init_worker(spec)
        results = (
            prepare_items(batch) for batch in _batched(sqlite_source(src_path, position, wanted), min(o.batch, o.chunk))
        )

    try:
        for chunk in results:
            counts.merge(chunk.counts)
            if target is not None and (chunk.out or chunk.quarantined or chunk.position):
                if chunk.quarantined:
                    assert qfile is not None  # opened whenever there is a target (not a dry run)
                    qfile.write(b"".join(chunk.quarantined))
                    qfile.flush()
                    os.fsync(qfile.fileno())
                    q_offset = qfile.tell()
                uncommitted += len(chunk.out)
                commit = uncommitted >= o.batch or chunk.halted is not None
                target.write(chunk.out, key, chunk.position or position or "", q_offset, counts, commit=commit)
                if commit:
                    uncommitted = 0
            if chunk.halted:
                raise MigrationError(
                    f"bad record at {chunk.halted[0]}: {chunk.halted[1]}",
                    file=o.source,
                    fix="fix the record, or run with --on-error quarantine",
                )
            if o.progress:
                o.progress(counts, int(chunk.position or 0) if src_kind == "jsonl" else counts.read)
        if target:
            target.commit()
            target.finish()
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if qfile:
            qfile.close()
        if target:
            target.close()
    elapsed = time.monotonic() - started
    return {
        "source": o.source,
        "target": o.target,
        "dry_run": o.dry_run,
        "resumed": resumed,
        "run_key": key,
        "run_id": builder.run_id,
        "as_of": as_of,
        "policy": {"name": o.policy.name, "hash": o.policy.digest},
        "shard": f"{o.shard[0]}/{o.shard[1]}" if o.shard else None,
        "quarantine_file": None if o.dry_run else str(qpath),
        "elapsed_s": round(elapsed, 3),
        "rate_per_s": round(counts.read / elapsed, 1) if elapsed else None,
        **counts.as_dict(),
    }
