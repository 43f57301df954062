"""Memory stores behind one small interface: the legacy store (jido_memory semantics), the MemoryOS
store (tiers, heat, relevance), both on SQLite (WAL, FTS5), and an HTTP adapter for remote services.

Writes are idempotent by (namespace, id, version): a put whose version is lower than the stored one
changes nothing, so a retried or mirrored write is never a new record.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import orjson

from cutover.store.records import MAX_LIMIT, RecallQuery, Record, now_ms
from cutover.store.rows import COLUMNS, METADATA, R_COLUMNS, decode, encode, json_text, upsert_sql, with_metadata

RECORDS_TABLE = """
CREATE TABLE IF NOT EXISTS records(
  rid INTEGER PRIMARY KEY,
  namespace TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
  class TEXT NOT NULL, kind TEXT, text TEXT NOT NULL, content TEXT, tags TEXT NOT NULL, source TEXT,
  observed_at INTEGER NOT NULL, expires_at INTEGER, metadata TEXT NOT NULL,
  tier TEXT, heat REAL NOT NULL DEFAULT 0, last_accessed_at INTEGER,
  UNIQUE(namespace, id)
);
"""
# The full-text index holds each word of a record's text qualified by its namespace (`ns_terms`: a short
# hash of the namespace before every word, "3f9a0c11d2e7apple"), so each namespace has a vocabulary of its
# own: a recall reads only its namespace's postings, and bm25's document frequencies are the namespace's
# (an agent's memory is its own corpus). Measured on 3 000 records in 50 namespaces: the match 15 us
# instead of 49 us with a namespace token ANDed to global words, bm25 of the candidates 56 us instead of
# 139 us (its IDF scans every posting of each query term, and those were the whole table's). The index
# reads its content through a view, so `rebuild` and the triggers compute the same terms; `ns_terms` is
# an SQL function of every connection (`SqliteStore._conn`, `register_functions`). Store files of before
# are upgraded when first opened (`SqliteStore._upgrade_fts`).
INDEXES = """
CREATE INDEX IF NOT EXISTS records_recent ON records(namespace, observed_at DESC);
CREATE VIEW IF NOT EXISTS records_terms AS SELECT rid, ns_terms(namespace, text) AS terms FROM records;
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(terms, content='records_terms', content_rowid='rid');
CREATE TRIGGER IF NOT EXISTS records_ai AFTER INSERT ON records BEGIN
  INSERT INTO records_fts(rowid, terms) VALUES (new.rid, ns_terms(new.namespace, new.text));
END;
CREATE TRIGGER IF NOT EXISTS records_ad AFTER DELETE ON records BEGIN
  INSERT INTO records_fts(records_fts, rowid, terms) VALUES ('delete', old.rid, ns_terms(old.namespace, old.text));
END;
CREATE TRIGGER IF NOT EXISTS records_au AFTER UPDATE OF namespace, text ON records BEGIN
  INSERT INTO records_fts(records_fts, rowid, terms) VALUES ('delete', old.rid, ns_terms(old.namespace, old.text));
  INSERT INTO records_fts(rowid, terms) VALUES (new.rid, ns_terms(new.namespace, new.text));
END;
"""
SCHEMA = RECORDS_TABLE + INDEXES
# A store file of before the namespace's vocabulary (an index of the plain text, with or without a
# namespace token): its triggers and index go, INDEXES makes the new ones, and a rebuild fills the index.
FTS_UPGRADE = """
DROP TRIGGER IF EXISTS records_ai;
DROP TRIGGER IF EXISTS records_ad;
DROP TRIGGER IF EXISTS records_au;
DROP TABLE IF EXISTS records_fts;
DROP VIEW IF EXISTS records_terms;
"""
# bm25 of a recall's terms, in its namespace's vocabulary
BM25 = "bm25(records_fts)"

# The mirror outbox: in a SQLite store's own file, so a write and its mirror row commit together.
# Scanned by seq only: no other index, so an enqueue on the request path writes two pages, the
# table's last leaf and the AUTOINCREMENT counter (outbox_due, on next_attempt_at, no query used).
OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL, target TEXT NOT NULL, namespace TEXT NOT NULL, id TEXT NOT NULL,
  op TEXT NOT NULL DEFAULT 'put', enqueued_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL, last_error TEXT
);
DROP INDEX IF EXISTS outbox_due;
CREATE TABLE IF NOT EXISTS dead_letter(
  seq INTEGER PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL, namespace TEXT NOT NULL,
  id TEXT NOT NULL, op TEXT NOT NULL, enqueued_at REAL NOT NULL, attempts INTEGER NOT NULL,
  failed_at REAL NOT NULL, last_error TEXT
);
"""
ENQUEUE = "INSERT INTO outbox(source, target, namespace, id, op, enqueued_at, next_attempt_at) VALUES (?,?,?,?,?,?,?)"

FTS_STRUCTURE = "SELECT block FROM records_fts_data WHERE id = 10"  # FTS5's record of its segments
FTS_MERGE_PAGES = 32  # full-text index pages merged a round of `SqliteStore.keep_index`
WAL_RESTART_FRAMES = 4096  # 16 MiB of 4 KiB pages: past this, keep_wal lets the WAL start over


def keep_wal(conn: sqlite3.Connection, write_lock, restart_frames: int = WAL_RESTART_FRAMES) -> int:
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
    frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    if frames > restart_frames:
        with write_lock:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return frames


_TERM = re.compile(r"\w+", re.UNICODE)


def _math_functions(conn: sqlite3.Connection) -> None:
    """ln and exp (MemoryOS's SCORE) where SQLite was built without its math functions."""
    try:
        conn.execute("SELECT ln(1.0), exp(0.0)").fetchone()
    except sqlite3.OperationalError:
        conn.create_function("ln", 1, lambda x: math.log(x) if x is not None and x > 0 else None, deterministic=True)
        conn.create_function("exp", 1, lambda x: math.exp(x) if x is not None else None, deterministic=True)


class StoreError(Exception):
    """A store could not serve the request (outage, injected fault, remote error)."""


class Store(Protocol):
    name: str

    def put(self, rec: Record, auto_version: bool = False) -> Record: ...
    def get(self, namespace: str, id: str) -> Record | None: ...
    def delete(self, namespace: str, id: str) -> bool: ...
    def recall(self, q: RecallQuery) -> list[Record]: ...
    def ping(self) -> None: ...


_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # what FTS5's unicode61 tokenizer takes for a word (letters, digits)


@functools.lru_cache(maxsize=65536)
def ns_prefix(namespace: str) -> str:
    """12 hex digits of a hash of the namespace: written before each word of its records in the full-text
    index. Two namespaces with one prefix (48 bits) would share a vocabulary, never answers: every recall
    also filters on the namespace column."""
    return hashlib.blake2b(namespace.encode(), digest_size=6).hexdigest()


def ns_terms(namespace: str, text: str) -> str:
    """A text as the full-text index holds it: each word prefixed with `ns_prefix(namespace)`."""
    p = ns_prefix(namespace)
    return " ".join([p + w for w in _WORD.findall(text)])


def statements(script: str) -> list[str]:
    """The SQL statements of a script, one by one (triggers whole)."""
    out, part = [], ""
    for line in script.splitlines(keepends=True):
        part += line
        if sqlite3.complete_statement(part):
            out.append(part.strip())
            part = ""
    return out


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions a store file's schema calls (`ns_terms`, and ln and exp where SQLite lacks
    them): every connection that writes records or recalls needs them."""
    conn.create_function("ns_terms", 2, ns_terms, deterministic=True)
    _math_functions(conn)


def fts_query(namespace: str, text: str) -> str | None:
    """A recall's full-text query: any of its words (up to 32, of two characters or more) in the
    namespace's vocabulary; None when it has none."""
    terms = [t for t in _TERM.findall(text.lower()) if len(t) > 1][:32]
    return " OR ".join(f'"{ns_terms(namespace, t)}"' for t in terms) if terms else None


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
            return lease.conn
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
    def get_rows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
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

    def put_rows(self, rows: list[tuple]) -> int:
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

    def _prepare_row(self, row: tuple) -> tuple:
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
            return c.execute(FTS_STRUCTURE).fetchone() != before

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return self._conn().execute("SELECT count(*) FROM records").fetchone()[0]
        return self._conn().execute("SELECT count(*) FROM records WHERE namespace=?", (namespace,)).fetchone()[0]

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
    def _filters(self, q: RecallQuery, now: int) -> tuple[str, list]:
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


class LegacyStore(SqliteStore):
    """jido_memory semantics: filter, then the most recent first. Free text matches any term."""

    name = "legacy"

    def recall(self, q: RecallQuery) -> list[Record]:
        where, args = self._filters(q, now_ms())
        match = fts_query(q.namespace, q.query)
        if match:
            where += " AND r.rid IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)"
            args.append(match)
        rows = (
            self._conn()
            .execute(
                f"SELECT {COLUMNS} FROM records r WHERE {where} ORDER BY r.observed_at DESC, r.id LIMIT ?",
                args + [min(q.limit, MAX_LIMIT)],
            )
            .fetchall()
        )
        return [self._record(r) for r in rows]


TIER_WEIGHT = {"long": 0.3, "mid": 0.15, "short": 0.0}
# A MemoryOS recall's score of a candidate row (columns of the candidates `c`, `rel` its text relevance,
# the parameter now in ms): relevance relative to the best candidate's, heat, recency (a week's e-fold),
# tier. The ranking the design gives MemoryOS, computed where the rows are. The best relevance is a
# subquery of the candidates, not a window (`max(rel) OVER ()` cost 50-110 us a recall: its sorter).
SCORE = (
    "rel / coalesce(nullif((SELECT max(rel) FROM c), 0.0), 1.0) + 0.2 * ln(1.0 + heat) "
    "+ 0.3 * exp(-max(? - observed_at, 0) / 86400000.0 / 7.0) + CASE tier "
    + " ".join(f"WHEN '{t}' THEN {w}" for t, w in TIER_WEIGHT.items())
    + " ELSE 0.0 END"
)
MEMORYOS_APP_ID = 0x4D4F5331  # PRAGMA application_id of a MemoryOS store ("MOS1"): what repair writes into


# Heat updates of a chunk of records, one statement (JSON [[times returned, last access, namespace, id],
# ...]): heat + times, last access, in the metadata too, each record found by its (namespace, id) key.
# One statement, not one per record: SQLite runs it with the GIL let go throughout, where executemany
# takes the GIL back after every record and so waits on the request threads each time (3 000 updates
# beside one thread busy with recalls: 9.3 s with executemany, 28 ms as one statement a chunk).
TOUCH_SQL = """
UPDATE records SET heat = heat + t.n, last_accessed_at = t.at,
  metadata = json_set(metadata, '$.mem_os.heat', heat + t.n, '$.mem_os.last_accessed_at', t.at)
FROM (
  SELECT json_extract(value, '$[0]') AS n, json_extract(value, '$[1]') AS at,
         json_extract(value, '$[2]') AS ns, json_extract(value, '$[3]') AS id FROM json_each(?)
) AS t
WHERE records.namespace = t.ns AND records.id = t.id
"""


class MemoryOSStore(SqliteStore):
    """MemoryOS semantics: records carry `metadata.mem_os` (tier short|mid|long, heat, ...); recall
    ranks candidates by text relevance, heat and recency across tiers, and a recall heats what it
    returns (heat + 1, last access now)."""

    name = "memoryos"
    CANDIDATES = 5  # candidates fetched per returned record
    TOUCH_EVERY_S = 0.2  # the recalls' heat updates are folded per record this often, off the request path
    HEAT_WRITE_EVERY_S = 30.0  # and written to the store file this often (see flush_heat)
    TOUCH_CHUNK = 200  # records' heat updates a transaction (about a millisecond of the writer lock)

    def __init__(self, path: str | Path, autocheckpoint: bool = True):
        super().__init__(path, autocheckpoint)
        if self._conn().execute("PRAGMA application_id").fetchone()[0] != MEMORYOS_APP_ID:
            self._conn().execute(f"PRAGMA application_id={MEMORYOS_APP_ID}")
        self._touched: list[list] = []  # [now, namespace, [ids]] per recall
        self._pending: dict[tuple[str, str], list[int]] = {}  # (namespace, id) -> [times returned, last access]
        self._pending_recalls = 0  # the recalls folded into _pending
        self._touch_lock = threading.Lock()
        self._heat_write = threading.Lock()  # one writer of the pending heat at a time
        self._flusher: threading.Thread | None = None

    @staticmethod
    def _with_mem_os(metadata: dict) -> dict | None:
        """The metadata with a complete `mem_os` (tier short unless a valid one is given), or None
        when it already has a valid tier."""
        mo = metadata.get("mem_os")
        if isinstance(mo, dict) and mo.get("tier") in TIER_WEIGHT:
            return None
        meta = {
            **metadata,
            "mem_os": {
                "tier": "short",
                "chain_id": None,
                "heat": 0.0,
                "promotion_score": 0.0,
                "last_accessed_at": None,
                "consolidation_version": 1,
                "persona_keys": [],
                **(mo if isinstance(mo, dict) else {}),
            },
        }
        if meta["mem_os"].get("tier") not in TIER_WEIGHT:
            meta["mem_os"]["tier"] = "short"
        return meta

    def _prepare(self, rec: Record) -> Record:
        meta = self._with_mem_os(rec.metadata)
        return rec if meta is None else rec.model_copy(update={"metadata": meta})

    def _prepare_row(self, row: tuple) -> tuple:
        meta = self._with_mem_os(orjson.loads(row[METADATA]))
        return row if meta is None else with_metadata(row, meta)

    def recall(self, q: RecallQuery, touch: bool = True) -> list[Record]:
        """touch=False: observe only (shadow reads must not heat what users never saw).

        One query: the candidates (the best `CANDIDATES` per wanted record by text relevance, or by heat
        and recency without a text query) with the columns the score needs, scored and cut in SQL
        (`SCORE`); only the returned rows are read whole and decoded."""
        now = now_ms()
        where, args = self._filters(q, now)
        match = fts_query(q.namespace, q.query)
        n = min(q.limit, MAX_LIMIT)
        ranked = "r.rid, r.id, r.heat, r.observed_at, r.tier"
        if match:
            candidates = (
                f"SELECT {ranked}, -{BM25} AS rel FROM records_fts JOIN records r ON r.rid = records_fts.rowid "
                f"WHERE records_fts MATCH ? AND {where} ORDER BY {BM25} LIMIT ?"
            )
            args = [match, *args]
        else:
            candidates = (
                f"SELECT {ranked}, 0.0 AS rel FROM records r WHERE {where} "
                "ORDER BY r.heat DESC, r.observed_at DESC LIMIT ?"
            )
        rows = (
            self._conn()
            .execute(
                f"WITH c AS ({candidates}), "
                f"top AS (SELECT rid, id, {SCORE} AS score FROM c ORDER BY score DESC, id LIMIT ?) "
                f"SELECT {R_COLUMNS} FROM top JOIN records r ON r.rid = top.rid ORDER BY top.score DESC, top.id",
                [*args, n * self.CANDIDATES, now, n],
            )
            .fetchall()
        )
        if touch:
            self._touch([(r[0], r[1]) for r in rows], now)
        return [self._record(r) for r in rows]

    def _touch(self, keys: list[tuple[str, str]], now: int) -> None:
        """Queue heat updates (one entry a recall); a background thread folds them per record every
        TOUCH_EVERY_S and writes them every HEAT_WRITE_EVERY_S (`flush_heat`)."""
        if not keys:
            return
        entry = [now, keys[0][0], [i for _, i in keys]]  # a recall's records share its namespace
        with self._touch_lock:
            self._touched.append(entry)
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="memoryos-heat", daemon=True)
                self._flusher.start()

    def _fold(self) -> None:
        """Fold the queued recalls into the pending heat, per record: heat + the times it was returned,
        last access the latest (a popular record is returned many times). Under `_heat_write`."""
        with self._touch_lock:
            batch, self._touched = self._touched, []
        pending = self._pending
        for at, ns, ids in batch:
            for i in ids:
                seen = pending.get((ns, i))
                if seen is None:
                    pending[(ns, i)] = [1, at]
                else:
                    seen[0] += 1
                    if at > seen[1]:
                        seen[1] = at
        self._pending_recalls += len(batch)

    def flush_heat(self) -> int:
        """Write the heat of every recall so far into the store file: heat + the times each record was
        returned, last access the latest, in the columns and in `metadata.mem_os`; `TOUCH_CHUNK`
        records a transaction with the writer lock let go between them, so a write waits at most one
        chunk. Returns the number of recalls applied.

        The background thread calls this every HEAT_WRITE_EVERY_S, not at each fold: a write to the
        file drops every reader's page cache, and a write every 0.2 s (a few hundred records each at
        saturation) put 8-16 ms stalls into MemoryOS's recall tail at a steady load. So the ranking
        sees a recall's heat up to HEAT_WRITE_EVERY_S later, and a process killed with -9 loses at
        most that much heat (heat is a popularity signal; the answers are not affected). `close()`
        writes what is pending."""
        with self._heat_write:
            self._fold()
            pending, recalls, self._pending, self._pending_recalls = self._pending, self._pending_recalls, {}, 0
            rows = [(times, at, ns, i) for (ns, i), (times, at) in pending.items()]
            c = self._conn()
            for k in range(0, len(rows), self.TOUCH_CHUNK):
                chunk = orjson.dumps(rows[k : k + self.TOUCH_CHUNK]).decode()
                try:
                    with self._write:
                        c.execute(TOUCH_SQL, (chunk,))  # one statement, its own transaction
                except sqlite3.OperationalError:  # heat is best effort, the answer is not
                    pass
            return recalls

    def _flush_loop(self) -> None:
        last_write = time.monotonic()
        while True:
            time.sleep(self.TOUCH_EVERY_S)
            if time.monotonic() - last_write >= self.HEAT_WRITE_EVERY_S:
                self.flush_heat()
                last_write = time.monotonic()
            else:
                with self._heat_write:
                    self._fold()

    def close(self) -> None:
        """Write the pending heat now (a gateway's shutdown)."""
        self.flush_heat()


class HttpStore:
    """A remote memory service that speaks cutover's HTTP API (/v1/memories, /v1/recall)."""

    def __init__(self, name: str, base_url: str, timeout: float = 2.0, agent_id: str = "cutover-gateway"):
        import httpx

        self.name, self.base_url = name, base_url
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers={"X-Agent-Id": agent_id})

    def _call(self, method: str, path: str, **kw):
        import httpx

        try:
            r = self._client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise StoreError(f"{self.name}: {exc}") from exc
        if r.status_code >= 500:
            raise StoreError(f"{self.name}: HTTP {r.status_code}")
        return r

    def put(self, rec: Record, auto_version: bool = False) -> Record:
        body = rec.dump()
        if auto_version:
            body.pop("version", None)
        r = self._call("POST", "/v1/memories", json=body)
        r.raise_for_status()
        return Record.model_validate(r.json()["record"])

    @staticmethod
    def _path(namespace: str, id: str) -> str:
        """The record's URL path, each part escaped: no ?, # or %2F can move it to another record."""
        from urllib.parse import quote

        return f"/v1/memories/{quote(namespace, safe='/')}/{quote(id, safe='')}"

    def get(self, namespace: str, id: str) -> Record | None:
        r = self._call("GET", self._path(namespace, id))
        return Record.model_validate(r.json()["record"]) if r.status_code == 200 else None

    def delete(self, namespace: str, id: str) -> bool:
        return self._call("DELETE", self._path(namespace, id)).status_code == 200

    def recall(self, q: RecallQuery) -> list[Record]:
        r = self._call("POST", "/v1/recall", json=q.model_dump(mode="json"))
        r.raise_for_status()
        return [Record.model_validate(x) for x in r.json()["records"]]

    def ping(self) -> None:
        self._call("GET", "/healthz")


class FaultyStore:
    """Wraps a store with injected faults for drills: added latency, an error rate, a full outage."""

    def __init__(self, inner, seed: int = 0):
        import random

        self.inner, self.name = inner, inner.name
        self.latency_ms, self.error_rate, self.outage = 0.0, 0.0, False
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def set(self, latency_ms: float = 0.0, error_rate: float = 0.0, outage: bool = False) -> None:
        self.latency_ms, self.error_rate, self.outage = latency_ms, error_rate, outage

    def state(self) -> dict:
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
            return self.inner.put(rec, auto_version, mirror_to)
        return self.inner.put(rec, auto_version)

    def put_many(self, records: list[Record]) -> int:
        self._fault()
        return self.inner.put_many(records)

    def get(self, namespace: str, id: str) -> Record | None:
        self._fault()
        return self.inner.get(namespace, id)

    def get_rows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
        self._fault()
        return self.inner.get_rows(keys)

    def put_rows(self, rows: list[tuple]) -> int:
        self._fault()
        return self.inner.put_rows(rows)

    def delete(self, namespace: str, id: str, mirror_to: str | None = None) -> bool:
        self._fault()
        if mirror_to:
            return self.inner.delete(namespace, id, mirror_to)
        return self.inner.delete(namespace, id)

    @property
    def local(self) -> bool:
        """True when writes can enqueue their mirror row atomically (a SQLite store)."""
        return isinstance(self.inner, SqliteStore)

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

    def __getattr__(self, attr):  # count, scan, namespaces, checkpoint: no faults (admin and tooling)
        return getattr(self.inner, attr)


def open_store(uri: str, kind: str, autocheckpoint: bool = True):
    """`sqlite:PATH` or `http(s)://…` -> a store of the given kind (legacy | memoryos)."""
    if uri.startswith(("http://", "https://")):
        return HttpStore(kind, uri)
    path = uri.removeprefix("sqlite:")
    return (LegacyStore if kind == "legacy" else MemoryOSStore)(path, autocheckpoint=autocheckpoint)
