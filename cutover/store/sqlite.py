"""The SQLite store's machinery, shared by the legacy and the MemoryOS store: connections (one a thread,
reused warm), writes under one writer lock, the version rule, rows as stored, WAL and index upkeep,
the recall filters.

Writes are idempotent by (namespace, id, version): a put whose version is lower than the stored one
changes nothing, so a retried or mirrored write is never a new record.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from cutover.store.records import RecallQuery, Record
from cutover.store.rows import COLUMNS, R_COLUMNS, Row, decode, encode, json_text, upsert_sql
from cutover.store.schema import (
    ENQUEUE,
    FTS_MERGE_PAGES,
    FTS_STRUCTURE,
    FTS_UPGRADE,
    INDEXES,
    OUTBOX_SCHEMA,
    RECORDS_TABLE,
    WAL_RESTART_FRAMES,
    register_functions,
    statements,
)


def keep_wal(
    conn: sqlite3.Connection, write_lock: AbstractContextManager[Any], restart_frames: int = WAL_RESTART_FRAMES
) -> int:
    """One round of WAL upkeep for a database file this process writes under `write_lock` (the
    serving process's writer lock); returns the frames the WAL held.

    A checkpoint that runs beside a steady stream of writes never catches up with the last frame,
    and SQLite starts the WAL over only after one that has, so the WAL grows without end (measured:
    22 MB in 12 s at 420 small writes/s; the gateway's legacy WAL held 32 000 frames, 128 MB, after
    a few minutes of benchmark). So: a passive checkpoint beside the writers copies the bulk and
    waits for its fsync; when the WAL holds more than `restart_frames`, a second one under the
    writer lock copies what was written meanwhile, and the next write starts the WAL from its
    beginning. Writers wait for that second step only: two fsyncs and the frames written meanwhile
    (measured at 800-1 000 writes/s: 2-6 ms, once 9 ms; a second pass beside the writers first did
    not shorten it)."""
    frames: int = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    if frames > restart_frames:
        with write_lock:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return frames


class _Lease:
    """A thread's hold on a connection: when the thread ends (its thread-local data is dropped), the
    connection goes back to the idle list, out of any transaction it was left in."""

    __slots__ = ("conn", "idle")

    def __init__(self, conn: sqlite3.Connection, idle: list[sqlite3.Connection]):
        self.conn, self.idle = conn, idle

    def __del__(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.idle.append(self.conn)
        except sqlite3.Error:
            pass  # closed or broken: dropped


class SqliteStore:
    """Shared SQLite machinery; `LegacyStore` and `MemoryOSStore` differ in how they recall."""

    name = "sqlite"

    def __init__(self, path: str | Path, autocheckpoint: bool = True):
        """autocheckpoint=False: writers never run the WAL checkpoint (and its fsync) themselves;
        the owner keeps the WAL from a background thread (the gateway's WAL keeper: `keep_wal`)."""
        self.path, self.autocheckpoint = str(path), autocheckpoint
        Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # owner-only from creation; SQLite gives its WAL the same mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._local = threading.local()
        self._idle: list[sqlite3.Connection] = []  # connections of threads that ended (see _conn)
        # One writer at a time, queued here rather than in SQLite's busy handler (which sleeps in
        # growing steps and puts 100 ms spikes into the write tail).
        self._write = threading.Lock()
        with self._conn() as c:
            c.executescript(RECORDS_TABLE)
            self._upgrade_fts(c)
            c.executescript(INDEXES + OUTBOX_SCHEMA)
            usermerge = c.execute("SELECT v FROM records_fts_config WHERE k = 'usermerge'").fetchone()
            if usermerge is None or usermerge[0] != 2:
                c.execute("INSERT INTO records_fts(records_fts, rank) VALUES ('usermerge', 2)")  # see keep_index

    @staticmethod
    def _upgrade_fts(c: sqlite3.Connection) -> None:
        """A store file written before the namespace's vocabulary (a full-text index of the plain text):
        a new index, rebuilt from the records once, in one transaction (seconds a million records). Run
        again by a process that waited for another's upgrade, it finds the new index and does nothing."""

        def current() -> bool:
            cols = [col[1] for col in c.execute("PRAGMA table_xinfo(records_fts)")]
            return not cols or cols[0] == "terms"  # a new file (INDEXES makes it) or upgraded

        if current():
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            if not current():
                for statement in statements(FTS_UPGRADE):  # executescript would commit first
                    c.execute(statement)
                if any(col[1] == "ns_key" for col in c.execute("PRAGMA table_xinfo(records)")):
                    c.execute("ALTER TABLE records DROP COLUMN ns_key")  # the namespace token's column
                for statement in statements(INDEXES):
                    c.execute(statement)
                c.execute("INSERT INTO records_fts(records_fts) VALUES('rebuild')")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection: one a thread, never shared at once. When a thread ends, its
        connection goes back to the store's idle list and the next new thread takes it, warm (its
        schema read, the SQL functions registered): the server's worker threads end after a few idle
        seconds and new ones start under load, and each new connection cost about 1.5 ms of its first
        recall, all at once at a load step (a 125 ms stall of MemoryOS's first reads)."""
        lease = getattr(self._local, "lease", None)
        if lease is not None:
            conn: sqlite3.Connection = lease.conn
            return conn
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process kill
            conn.execute("PRAGMA busy_timeout=30000")
            if not self.autocheckpoint:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.row_factory = sqlite3.Row
            register_functions(conn)
        self._local.lease = _Lease(conn, self._idle)
        return conn

    # -- rows -------------------------------------------------------------------------------------
    def _prepare(self, rec: Record) -> Record:
        return rec

    _record = staticmethod(decode)  # a record from a row in COLUMNS order (a sqlite3.Row or a plain tuple)

    # -- interface --------------------------------------------------------------------------------
    def put(self, rec: Record, auto_version: bool = False, mirror_to: str | None = None) -> Record:
        """Create or replace. auto_version: the next version after the stored one (a new write);
        otherwise the record's own version wins only if it is not lower (a copy or a retry).
        mirror_to: also enqueue the copy to that store in this store's outbox, in the same commit."""
        rec = self._prepare(rec)
        c = self._conn()
        with self._write:
            return self._put(c, rec, auto_version, mirror_to)

    def _put(self, c: sqlite3.Connection, rec: Record, auto_version: bool, mirror_to: str | None) -> Record:
        c.execute("BEGIN IMMEDIATE")
        try:
            if auto_version:
                cur = c.execute("SELECT version FROM records WHERE namespace=? AND id=?", rec.key).fetchone()
                rec = rec.model_copy(update={"version": (cur[0] + 1) if cur else max(rec.version, 1)})
            c.execute(upsert_sql(), encode(rec))
            if mirror_to:
                now = time.time()
                c.execute(ENQUEUE, (self.name, mirror_to, rec.namespace, rec.id, "put", now, now))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return rec

    def put_many(self, records: list[Record]) -> int:
        """Batch copy (migration, repair): one transaction, version rule as in put()."""
        c = self._conn()
        with self._write:
            return self._put_many(c, records)

    def _put_many(self, c: sqlite3.Connection, records: list[Record]) -> int:
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(upsert_sql(), [encode(self._prepare(r)) for r in records])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return len(records)

    def get(self, namespace: str, id: str) -> Record | None:
        row = (
            self._conn()
            .execute(f"SELECT {COLUMNS} FROM records WHERE namespace=? AND id=?", (namespace, id))
            .fetchone()
        )
        return self._record(row) if row else None

    # -- rows as stored: the mirror worker's copy path -------------------------------------------
    def get_rows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        """The stored rows of these (namespace, id) keys, in one query, as plain tuples in COLUMNS
        order: what `put_rows` of another SQLite store takes. The mirror worker copies a batch this
        way without building a record per row only to turn it back into a row (a third of the
        gateway child's CPU per copied write went to that)."""
        cur = self._conn().cursor()
        cur.row_factory = None
        rows = cur.execute(
            f"SELECT {R_COLUMNS} FROM json_each(?) AS k JOIN records AS r "
            "ON r.namespace = json_extract(k.value, '$[0]') AND r.id = json_extract(k.value, '$[1]')",
            (orjson.dumps(keys).decode(),),
        ).fetchall()
        return {(row[0], row[1]): row for row in rows}

    def put_rows(self, rows: list[Row]) -> int:
        """Batch copy of rows from `get_rows` (of any SQLite store): one transaction, the version rule
        as in put(); this store's own metadata rules apply as in put() (MemoryOS: `metadata.mem_os`)."""
        c = self._conn()
        with self._write:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany(upsert_sql(), [self._prepare_row(r) for r in rows])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return len(rows)

    def _prepare_row(self, row: Row) -> Row:
        return row

    def delete(self, namespace: str, id: str, mirror_to: str | None = None) -> bool:
        c = self._conn()
        with self._write:
            c.execute("BEGIN IMMEDIATE")
            try:
                n = c.execute("DELETE FROM records WHERE namespace=? AND id=?", (namespace, id)).rowcount
                if mirror_to:
                    now = time.time()
                    c.execute(ENQUEUE, (self.name, mirror_to, namespace, id, "delete", now, now))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return n > 0

    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        """Write back what is held in memory (MemoryOS: the pending heat); the connections stay usable."""

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking readers or writers (PASSIVE)."""
        self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def keep_wal(self, restart_frames: int = WAL_RESTART_FRAMES) -> int:
        """Checkpoint, and let the WAL start over once it is long (see `keep_wal`)."""
        return keep_wal(self._conn(), self._write, restart_frames)

    def keep_index(self, pages: int = FTS_MERGE_PAGES) -> bool:
        """One round of full-text index upkeep: merge up to `pages` pages of its segments, under the
        writer lock (at most a few milliseconds: 32 pages took up to 5 ms beside a stream of writes);
        nothing is written when there is nothing to merge, and nothing waits when another process
        holds the file's write lock. Returns whether it merged anything.

        Each write transaction adds a segment to the index and every term of a recall is looked up in
        each segment; SQLite's own merging on write (automerge) leaves up to three a level. Merged here
        whenever two share a level (usermerge 2, set when the store is opened), a store written one
        record at a time recalls as fast as one written in bulk (measured on 3 000 records: legacy
        recall 55 us instead of 101, MemoryOS 138 instead of 298)."""
        c = self._conn()
        with self._write:
            before = c.execute(FTS_STRUCTURE).fetchone()
            # Another process may be writing this file (the gateway's child mirrors into it): then this
            # round is skipped at once (SQLITE_BUSY) rather than waiting in SQLite's busy handler,
            # which sleeps in steps of up to 100 ms and would hold up the caller's other upkeep.
            c.execute("PRAGMA busy_timeout=0")
            try:
                c.execute("INSERT INTO records_fts(records_fts, rank) VALUES ('merge', ?)", (pages,))
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                return False
            finally:
                c.execute("PRAGMA busy_timeout=30000")
            merged: bool = c.execute(FTS_STRUCTURE).fetchone() != before
            return merged

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            n: int = self._conn().execute("SELECT count(*) FROM records").fetchone()[0]
            return n
        n = self._conn().execute("SELECT count(*) FROM records WHERE namespace=?", (namespace,)).fetchone()[0]
        return n

    def namespaces(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT DISTINCT namespace FROM records ORDER BY namespace")]

    def scan(self, namespace: str | None = None, batch: int = 5000) -> Iterator[Record]:
        """Every record (of a namespace), in (namespace, id) order, in batches."""
        last = ("", "")
        where = "namespace=? AND " if namespace is not None else ""
        while True:
            args = ((namespace,) if namespace is not None else ()) + (last[0], last[0], last[1], batch)
            rows = (
                self._conn()
                .execute(
                    f"SELECT {COLUMNS} FROM records WHERE {where}(namespace > ? OR (namespace = ? AND id > ?)) "
                    "ORDER BY namespace, id LIMIT ?",
                    args,
                )
                .fetchall()
            )
            if not rows:
                return
            for row in rows:
                yield self._record(row)
            last = (rows[-1]["namespace"], rows[-1]["id"])

    # -- recall -----------------------------------------------------------------------------------
    def _filters(self, q: RecallQuery, now: int) -> tuple[str, list[Any]]:
        where, args = ["r.namespace = ?", "(r.expires_at IS NULL OR r.expires_at > ?)"], [q.namespace, now]
        if q.ids:
            where.append("r.id IN (SELECT value FROM json_each(?))")
            args.append(json_text(q.ids))
        if q.classes:
            where.append(f"r.class IN ({','.join('?' * len(q.classes))})")
            args += q.classes
        if q.tags_any:
            where.append(f"EXISTS (SELECT 1 FROM json_each(r.tags) WHERE value IN ({','.join('?' * len(q.tags_any))}))")
            args += q.tags_any
        for tag in q.tags_all:
            where.append("EXISTS (SELECT 1 FROM json_each(r.tags) WHERE value = ?)")
            args.append(tag)
        if q.text_contains:
            where.append("instr(lower(r.text), lower(?)) > 0")
            args.append(q.text_contains)
        if q.since is not None:
            where.append("r.observed_at >= ?")
            args.append(q.since)
        if q.until is not None:
            where.append("r.observed_at <= ?")
            args.append(q.until)
        return " AND ".join(where), args
