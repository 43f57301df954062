"""A migration's targets and their checkpoints: a MemoryOS store (the checkpoint row commits with each
batch) or a JSONL file (the checkpoint file beside it records the byte offset)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cutover.migration.counts import Counts
from cutover.migration.options import parse_uri
from cutover.migration.workers import PACKED_TABLE, PackedRows
from cutover.store.memoryos import MemoryOSStore
from cutover.store.rows import Row, upsert_from_sql, upsert_sql

CACHE_KIB = 64 * 1024  # SQLite page cache of the migration's writer
WAL_PAGES_BULK = 65536  # checkpoint after this many WAL pages (256 MiB) in bulk mode (--defer-index)
WAL_PAGES = 8192  # and with the live index (32 MiB: readers, such as a gateway, search the WAL too)
CHECKPOINTS = """
CREATE TABLE IF NOT EXISTS migration_checkpoints(
  run_key TEXT PRIMARY KEY, position TEXT NOT NULL, quarantine_offset INTEGER NOT NULL,
  counts TEXT NOT NULL, updated_at REAL NOT NULL, as_of INTEGER
);
"""


@dataclass(frozen=True)
class Checkpoint:
    """Where a run resumes: the source position after its last committed batch, the quarantine
    file's length then, and the counts so far (`Counts` fields)."""

    position: str
    quarantine_offset: int
    counts: dict[str, Any]


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

    def checkpoint(self, run_key: str) -> Checkpoint | None:
        row = self.conn.execute(
            "SELECT position, quarantine_offset, counts FROM migration_checkpoints WHERE run_key=?", (run_key,)
        ).fetchone()
        return Checkpoint(row[0], row[1], json.loads(row[2])) if row else None

    def write(
        self,
        rows: list[Row] | PackedRows,
        run_key: str,
        position: str,
        q_offset: int,
        counts: Counts,
        commit: bool = True,
    ) -> None:
        """Upsert a chunk (rows from `Builder.row`, or PackedRows from a worker; a record already there at
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

    def checkpoint(self, run_key: str) -> Checkpoint | None:
        if not self.ckpt.is_file():
            return None
        data: dict[str, Any] = json.loads(self.ckpt.read_text())
        if data.get("run_key") != run_key:
            return None
        self.f.truncate(data["target_offset"])  # drop what was written after the last checkpoint
        self.f.seek(0, os.SEEK_END)
        return Checkpoint(data["position"], data["quarantine_offset"], data["counts"])

    def write(
        self,
        records: list[dict[str, Any]] | PackedRows,
        run_key: str,
        position: str,
        q_offset: int,
        counts: Counts,
        commit: bool = True,
    ) -> None:
        """Append and checkpoint (each chunk: a file has no transaction to share). Record dicts: only
        rows for a SQLite target come packed."""
        dicts = cast("list[dict[str, Any]]", records)
        self.f.write(b"".join(json.dumps(d).encode() + b"\n" for d in dicts))
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
