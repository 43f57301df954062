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

import orjson
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .errors import CutoverError
from .policy import Policy
from .records import MAX_TEXT, now_ms
from .stores import COLUMNS, LegacyStore, MemoryOSStore, upsert_sql

CLASSES = frozenset({"episodic", "semantic", "procedural", "working"})
PROMOTION_SCORE = {"short": 0.2, "mid": 0.5, "long": 0.8}
CHECKPOINTS = """
CREATE TABLE IF NOT EXISTS migration_checkpoints(
  run_key TEXT PRIMARY KEY, position TEXT NOT NULL, quarantine_offset INTEGER NOT NULL,
  counts TEXT NOT NULL, updated_at REAL NOT NULL
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
    """Why a source object is not a valid legacy record (None: it is)."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    for key in ("id", "namespace"):
        v = obj.get(key)
        if v is None or v == "":
            return f"missing {key}"
        if not isinstance(v, str):
            return f"{key} is {type(v).__name__}, not a string"
    text = obj.get("text", "")
    if not isinstance(text, str):
        return f"text is {type(text).__name__}, not a string"
    if len(text) > MAX_TEXT:
        return f"text of {len(text)} characters is over the limit of {MAX_TEXT}"
    if obj.get("class", "episodic") not in CLASSES:
        return f"class {obj.get('class')!r} is not one of {sorted(CLASSES)}"
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return "tags is not a list of strings"
    for key in ("observed_at", "expires_at", "version"):
        v = obj.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            return f"{key} is not a non-negative integer (ms)"
    if not isinstance(obj.get("metadata", {}), dict):
        return "metadata is not an object"
    return None


@dataclass
class Context:
    source: str
    run_id: str
    policy: Policy
    now: int
    classify: Callable[[dict], tuple[str, str]]


def backfill(rec: dict, ctx: Context) -> tuple[dict, str, str, int]:
    """Add metadata.mem_os and metadata.migration; existing fields are kept. Returns
    (record, tier, rule, number of existing fields kept over computed ones)."""
    tier, rule = ctx.classify(rec)
    meta = dict(rec.get("metadata") or {})
    existing = meta.get("mem_os") if isinstance(meta.get("mem_os"), dict) else {}
    tags = rec.get("tags") or []
    computed = {
        "tier": tier,
        "chain_id": f"{rec['namespace']}:{rec.get('kind', 'note')}",
        "heat": 0.0,
        "promotion_score": PROMOTION_SCORE[tier],
        "last_accessed_at": rec.get("observed_at"),
        "consolidation_version": 1,
        "persona_keys": sorted(t.split(":", 1)[1] for t in tags if t.startswith("persona:") and len(t) > 8),
    }
    kept = sum(1 for k, v in existing.items() if k in computed and computed[k] != v)
    meta["mem_os"] = {**computed, **existing}
    if "migration" not in meta:
        meta["migration"] = {
            "source": ctx.source, "run_id": ctx.run_id, "migrated_at": ctx.now, "legacy_namespace": rec["namespace"],
            "policy": ctx.policy.name, "policy_hash": ctx.policy.digest,
        }
    out = {
        "id": rec["id"], "namespace": rec["namespace"], "class": rec.get("class", "episodic"), "kind": rec.get("kind", "note"),
        "text": rec.get("text", ""), "content": rec.get("content"), "tags": sorted(set(tags)), "source": rec.get("source"),
        "observed_at": rec.get("observed_at", ctx.now), "expires_at": rec.get("expires_at"), "metadata": meta,
        "version": rec.get("version") or 1,
    }
    return out, meta["mem_os"]["tier"], rule, kept


def _dumps(v) -> str:
    return orjson.dumps(v).decode()


def row_of(d: dict) -> tuple:
    mo = d["metadata"]["mem_os"]
    return (d["namespace"], d["id"], d["version"], d["class"], d["kind"], d["text"], _dumps(d["content"]),
            _dumps(d["tags"]), d["source"], d["observed_at"], d["expires_at"], _dumps(d["metadata"]),
            mo["tier"], float(mo.get("heat") or 0.0), mo.get("last_accessed_at"))


# -- sources ---------------------------------------------------------------------------------------
@dataclass
class Item:
    position: str  # where to resume after this item
    where: str  # line N or id, for quarantine
    obj: object | None
    error: str | None = None


def jsonl_source(path: Path, start: str | None) -> Iterator[Item]:
    """Byte-offset positions: resume seeks straight to the next line."""
    offset = int(start or 0)
    line_no = None
    with open(path, "rb") as f:
        f.seek(offset)
        if offset == 0:
            line_no = 0
        for raw in f:
            offset += len(raw)
            line_no = (line_no + 1) if line_no is not None else None
            where = f"line {line_no}" if line_no is not None else f"byte {offset - len(raw)}"
            text = raw.strip()
            if not text:
                continue
            try:
                yield Item(str(offset), where, orjson.loads(text))
            except orjson.JSONDecodeError as exc:
                yield Item(str(offset), where, None, f"malformed JSON: {str(exc).split(':')[0]}")


def sqlite_source(path: Path, start: str | None, namespaces: set[str] | None) -> Iterator[Item]:
    if not path.is_file():
        raise MigrationError("no such store", file=str(path), fix="check the sqlite: path")
    store = LegacyStore(path)
    last = tuple(json.loads(start)) if start else ("", "")
    conn = store._conn()
    while True:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM records WHERE (namespace > ? OR (namespace = ? AND id > ?)) "
            "ORDER BY namespace, id LIMIT 5000", (last[0], last[0], last[1]),
        ).fetchall()
        if not rows:
            return
        for r in rows:
            last = (r["namespace"], r["id"])
            if namespaces is not None and r["namespace"] not in namespaces:
                continue
            yield Item(json.dumps(last), f"id {r['namespace']}/{r['id']}", {
                "id": r["id"], "namespace": r["namespace"], "class": r["class"], "kind": r["kind"], "text": r["text"],
                "content": json.loads(r["content"]) if r["content"] else None, "tags": json.loads(r["tags"]),
                "source": r["source"], "observed_at": r["observed_at"], "expires_at": r["expires_at"],
                "metadata": json.loads(r["metadata"]), "version": r["version"],
            })


# -- targets ---------------------------------------------------------------------------------------
class SqliteTarget:
    """A MemoryOS store; the checkpoint row commits with each batch.

    defer_index: bulk mode. The full-text insert trigger is dropped for the run and the index is
    rebuilt in one pass at the end (about 5x faster). Until the rebuild, text search misses what
    was written meanwhile (by this run or a gateway mirroring into the store), so use it before
    MemoryOS serves reads. A crashed bulk run leaves the trigger off: run the command again, it
    resumes and finishes the rebuild."""

    def __init__(self, path: Path, defer_index: bool = False):
        self.store = MemoryOSStore(path)
        self.conn = self.store._conn()
        self.conn.executescript(CHECKPOINTS)
        self.defer_index = defer_index or not self._has_insert_trigger()
        if self.defer_index:
            with self.store._write:
                self.conn.execute("DROP TRIGGER IF EXISTS records_ai")

    def _has_insert_trigger(self) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='records_ai'").fetchone() is not None

    def finish(self) -> None:
        """Rebuild the full-text index and put the trigger back (bulk mode)."""
        if not self.defer_index:
            return
        from .stores import SCHEMA

        with self.store._write:
            self.conn.execute("INSERT INTO records_fts(records_fts) VALUES('rebuild')")
            self.conn.executescript(SCHEMA)  # IF NOT EXISTS: recreates only the dropped trigger

    def checkpoint(self, run_key: str) -> dict | None:
        row = self.conn.execute("SELECT position, quarantine_offset, counts FROM migration_checkpoints WHERE run_key=?",
                                (run_key,)).fetchone()
        return {"position": row[0], "quarantine_offset": row[1], "counts": json.loads(row[2])} if row else None

    def write(self, records: list[dict], run_key: str, position: str, q_offset: int, counts: Counts) -> None:
        """Upsert the batch (a record already there at the same or a newer version is left as is, and
        counted unchanged) and the checkpoint, in one transaction."""
        c = self.conn
        with self.store._write:
            c.execute("BEGIN IMMEDIATE")
            try:
                cur = c.executemany(upsert_sql(strictly_newer=True), [row_of(d) for d in records])
                unchanged = len(records) - max(cur.rowcount, 0)
                counts.unchanged += unchanged
                counts.migrated -= unchanged
                c.execute("INSERT OR REPLACE INTO migration_checkpoints VALUES (?,?,?,?,?)",
                          (run_key, position, q_offset, json.dumps(counts.as_dict()), time.time()))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.store.checkpoint()


class JsonlTarget:
    """A JSONL file of migrated records; the checkpoint file beside it records the byte offset."""

    def __init__(self, path: Path):
        self.path, self.ckpt = path, path.with_name(path.name + ".checkpoint.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "ab")

    def checkpoint(self, run_key: str) -> dict | None:
        if not self.ckpt.is_file():
            return None
        data = json.loads(self.ckpt.read_text())
        if data.get("run_key") != run_key:
            return None
        self.f.truncate(data["target_offset"])  # drop what was written after the last checkpoint
        self.f.seek(0, os.SEEK_END)
        return data

    def write(self, records: list[dict], run_key: str, position: str, q_offset: int, counts: "Counts") -> None:
        self.f.write(b"".join(json.dumps(d).encode() + b"\n" for d in records))
        self.f.flush()
        os.fsync(self.f.fileno())
        tmp = self.ckpt.with_suffix(".tmp")
        tmp.write_text(json.dumps({"run_key": run_key, "position": position, "quarantine_offset": q_offset,
                                   "target_offset": self.f.tell(), "counts": counts.as_dict()}))
        os.replace(tmp, self.ckpt)

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


@dataclass
class Options:
    source: str
    target: str
    policy: Policy
    namespaces: list[str] | None = None
    shard: tuple[int, int] | None = None
    batch: int = 5000
    dry_run: bool = False
    on_error: str = "quarantine"
    quarantine: Path | None = None
    restart: bool = False
    defer_index: bool = False
    progress: Callable[[Counts, int], None] | None = None  # (counts, source bytes done or records)


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
    target = None if o.dry_run else (SqliteTarget(dst_path, o.defer_index) if dst_kind == "sqlite" else JsonlTarget(dst_path))
    qpath = o.quarantine or dst_path.with_name(dst_path.name + ".quarantine.jsonl")
    started = time.monotonic()
    ctx = Context(o.source, uuid.uuid4().hex[:12], o.policy, now_ms(), o.policy.compile(now_ms()))
    counts, position, q_offset, resumed = Counts(), None, 0, False
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
    wanted = set(o.namespaces) if o.namespaces else None
    items = jsonl_source(src_path, position) if src_kind == "jsonl" else sqlite_source(src_path, position, wanted)

    batch: list[dict] = []
    quarantined: list[bytes] = []
    last_position = position

    def flush() -> None:
        nonlocal batch, quarantined, q_offset
        if target is None:
            batch, quarantined = [], []
            return
        if quarantined:
            qfile.write(b"".join(quarantined))
            qfile.flush()
            os.fsync(qfile.fileno())
            q_offset = qfile.tell()
        target.write(batch, key, last_position or "", q_offset, counts)
        batch, quarantined = [], []

    try:
        for item in items:
            last_position = item.position
            counts.read += 1
            obj = item.obj
            reason = item.error or problem(obj)
            if reason is None and wanted is not None and obj["namespace"] not in wanted:
                continue
            if reason is None and o.shard and shard_of(obj["namespace"], o.shard[1]) != o.shard[0]:
                counts.skipped_other_shards += 1
                continue
            if reason is not None:
                counts.quarantined += 1
                counts.quarantine_reasons[reason.split(":")[0]] = counts.quarantine_reasons.get(reason.split(":")[0], 0) + 1
                rid = obj.get("id") if isinstance(obj, dict) else None
                quarantined.append(json.dumps({"where": item.where, "id": rid, "reason": reason}).encode() + b"\n")
                if o.on_error == "halt":
                    flush()
                    raise MigrationError(f"bad record at {item.where}: {reason}", file=o.source,
                                         fix="fix the record, or run with --on-error quarantine")
                continue
            rec, tier, rule, kept = backfill(obj, ctx)
            counts.migrated += 1
            counts.kept_existing_fields += kept
            counts.by_tier[tier] = counts.by_tier.get(tier, 0) + 1
            counts.by_rule[rule] = counts.by_rule.get(rule, 0) + 1
            batch.append(rec)
            if len(batch) >= o.batch:
                flush()
                if o.progress:
                    o.progress(counts, int(item.position) if src_kind == "jsonl" else counts.read)
        flush()
        if target:
            target.finish()
    finally:
        if qfile:
            qfile.close()
        if target:
            target.close()
    elapsed = time.monotonic() - started
    return {
        "source": o.source, "target": o.target, "dry_run": o.dry_run, "resumed": resumed, "run_key": key,
        "run_id": ctx.run_id, "policy": {"name": o.policy.name, "hash": o.policy.digest},
        "shard": f"{o.shard[0]}/{o.shard[1]}" if o.shard else None, "quarantine_file": None if o.dry_run else str(qpath),
        "elapsed_s": round(elapsed, 3), "rate_per_s": round(counts.read / elapsed, 1) if elapsed else None,
        **counts.as_dict(),
    }
