"""The durable mirror outbox (SQLite) and the worker that drains it.

A write enqueues the key (namespace, id) and the operation for the other store *before* the primary
write and the acknowledgement, in its own committed transaction. The worker copies the source's
current state of that key to the target: for a put, the source's record (the version rule makes it
idempotent); for a delete, a delete when the source no longer has the record. A row is enqueued
just before its primary write commits, so a source that does not show the write yet is asked again
until the row is `settle_s` old; only then is the write taken as never made (a crash before
commit). So a crash at any point leaves either nothing to do or a row that converges the target,
a retried row is never a new record, and a row can never delete what a newer write created.
Failures retry with exponential backoff; a row that keeps failing moves to the dead-letter table
with its last error.

A copy into MemoryOS is built by the migration's builder (`cutover.migration.build`): the tier by
the policy, lifecycle fields and provenance, at the as-of of the write (its enqueue time, to the
second), so a mirrored record is the row migrate or `reconcile --repair` would write for it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard

from cutover.migration.build import Builder
from cutover.migration.tiering import Policy, load_policy
from cutover.store.faults import FaultyStore
from cutover.store.interface import StoreError
from cutover.store.records import Record
from cutover.store.rows import Row, legacy_of_row
from cutover.store.schema import ENQUEUE, OUTBOX_SCHEMA
from cutover.store.sqlite import SqliteStore, keep_wal

DONE_CHUNK = 64  # outbox entries deleted per transaction (see Outbox.done)


class Entry(NamedTuple):  # built per outbox row read: 0.6 us, a frozen dataclass 1.7 us
    seq: int
    source: str
    target: str
    namespace: str
    id: str
    op: str
    enqueued_at: float
    attempts: int


class Outbox:
    def __init__(
        self,
        path: str | Path | None = None,
        max_attempts: int = 12,
        backoff_s: float = 0.2,
        backoff_max_s: float = 30,
        autocheckpoint: bool = True,
        store: SqliteStore | None = None,
    ) -> None:
        """A file of its own (`path`), or the outbox tables inside a SQLite store (`store`): then the
        store's writes enqueue in their own transaction, and connection and writer lock are shared."""
        self.max_attempts, self.backoff_s, self.backoff_max_s = max_attempts, backoff_s, backoff_max_s
        self._store = store
        if store is not None:
            self.path, self._write = store.path, store._write
        else:
            self.path, self.autocheckpoint = str(path), autocheckpoint
            self._local = threading.local()
            self._write = threading.Lock()  # queue writers here, not in SQLite's sleeping busy handler
        self._conn().executescript(OUTBOX_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        if self._store is not None:
            return self._store._conn()  # the store's connection of this thread
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            if not self.autocheckpoint:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
        return conn

    def enqueue(self, source: str, target: str, namespace: str, id: str, op: str = "put") -> int:
        now = time.time()
        with self._write:
            cur = self._conn().execute(ENQUEUE, (source, target, namespace, id, op, now, now))
        seq = cur.lastrowid
        assert seq is not None  # set by every INSERT
        return seq

    def due(self, limit: int = 200, after: int = 0) -> list[Entry]:
        """Entries due now, in seq order, with seq > after."""
        rows = (
            self._conn()
            .execute(
                "SELECT seq, source, target, namespace, id, op, enqueued_at, attempts FROM outbox "
                "WHERE seq > ? AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
                (after, time.time(), limit),
            )
            .fetchall()
        )
        return [Entry(*r) for r in rows]

    def done(self, seqs: list[int]) -> None:
        """Delete these entries: a range delete per run of consecutive seqs, at most DONE_CHUNK entries
        a transaction, the writer lock let go between them. Half a second of copies at 900 writes/s
        held the lock of the requests' writes for up to 2.4 ms in one transaction; a chunk holds it
        for a fraction of a millisecond, so a write waits at most that long behind the deletes."""
        ordered, c = sorted(seqs), self._conn()
        for i in range(0, len(ordered), DONE_CHUNK):
            ranges: list[list[int]] = []  # [first, last] of each run of consecutive seqs in this chunk
            for s in ordered[i : i + DONE_CHUNK]:
                if ranges and s == ranges[-1][1] + 1:
                    ranges[-1][1] = s
                else:
                    ranges.append([s, s])
            with self._write:
                c.execute("BEGIN IMMEDIATE")
                c.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", ranges)
                c.execute("COMMIT")

    def keep_wal(self) -> int:
        """Checkpoint, and let the WAL start over once it is long (see `store.sqlite.keep_wal`)."""
        return keep_wal(self._conn(), self._write)

    def later(self, seqs: list[int], delay: float) -> None:
        """Look again after `delay` (not a failure: the primary write may not be visible yet)."""
        with self._write:
            c = self._conn()
            c.execute("BEGIN IMMEDIATE")
            c.executemany(
                "UPDATE outbox SET next_attempt_at = ? WHERE seq = ?", [(time.time() + delay, s) for s in seqs]
            )
            c.execute("COMMIT")

    def failed(self, e: Entry, error: str) -> bool:
        """Schedule a retry; returns True when the entry was dead-lettered instead."""
        with self._write:
            return self._failed(e, error)

    def _failed(self, e: Entry, error: str) -> bool:
        attempts = e.attempts + 1
        c = self._conn()
        if attempts >= self.max_attempts:
            c.execute("BEGIN IMMEDIATE")
            c.execute(
                "INSERT OR REPLACE INTO dead_letter VALUES (?,?,?,?,?,?,?,?,?,?)",
                (e.seq, e.source, e.target, e.namespace, e.id, e.op, e.enqueued_at, attempts, time.time(), error),
            )
            c.execute("DELETE FROM outbox WHERE seq = ?", (e.seq,))
            c.execute("COMMIT")
            return True
        delay = min(self.backoff_s * 2 ** (attempts - 1), self.backoff_max_s)
        c.execute(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?",
            (attempts, time.time() + delay, error[:500], e.seq),
        )
        return False

    def depth(self) -> dict[str, int]:
        return dict(self._conn().execute("SELECT target, count(*) FROM outbox GROUP BY target").fetchall())

    def oldest_age(self) -> dict[str, float]:
        now = time.time()
        return {
            t: now - ts for t, ts in self._conn().execute("SELECT target, min(enqueued_at) FROM outbox GROUP BY target")
        }

    def dead_letter_counts(self) -> dict[str, int]:
        return dict(self._conn().execute("SELECT target, count(*) FROM dead_letter GROUP BY target").fetchall())

    def dead_letters(self) -> list[dict[str, Any]]:
        cur = self._conn().execute("SELECT * FROM dead_letter ORDER BY seq")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def requeue_dead(self) -> int:
        """Move dead letters back into the outbox (after the cause is fixed)."""
        with self._write:
            return self._requeue_dead()

    def _requeue_dead(self) -> int:
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        n = c.execute(
            "INSERT INTO outbox(source, target, namespace, id, op, enqueued_at, next_attempt_at) "
            "SELECT source, target, namespace, id, op, enqueued_at, ? FROM dead_letter",
            (time.time(),),
        ).rowcount
        c.execute("DELETE FROM dead_letter")
        c.execute("COMMIT")
        return n


def _holds_rows(store: object) -> bool:
    """A SQLite store (or one wrapped for faults): copies between two of them go as rows."""
    return isinstance(getattr(store, "inner", store), SqliteStore)


def _all_rows(copies: list[Row | Record]) -> TypeGuard[list[Row]]:
    """Every copy a row (none a record)."""
    return all(isinstance(c, tuple) for c in copies)


HANDOVER_S = 10.0  # entries handed to on_done stay out of the worker's batches this long
BATCH = 200  # outbox entries read per batch


class MirrorWorker(threading.Thread):
    """Drains the outboxes: copies the source's current state of each key to the target."""

    def __init__(
        self,
        outboxes: list[Outbox] | Outbox,
        stores: Mapping[str, FaultyStore | SqliteStore],
        on_failure: Callable[[str, str], None] = lambda t, r: None,
        idle_s: float = 0.05,
        settle_s: float = 10.0,
        done_flush_s: float = 0.0,
        batch_wait_s: float = 0.0,
        on_done: Callable[[int, list[int]], None] | None = None,
        write_scope: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
        on_start: Callable[[], None] = lambda: None,
        policy: Policy | None = None,
        as_of: Callable[[Entry], int] | None = None,
    ) -> None:
        """done_flush_s > 0: copied entries are deleted from their outbox in batches at most that often
        (fewer write transactions on the primary's file, whose lock the requests' writes need; in
        another process a waiting writer sleeps in SQLite's busy handler). Until then they are kept
        out of the next batches here; after a crash they are copied again, which is idempotent.

        batch_wait_s > 0: after a batch smaller than a full one, wait this long before the next scan.
        Under a steady stream of writes the copies then go in batches of about rate x batch_wait_s
        entries, one transaction each, instead of one for every few entries: fewer reads, commits
        and full-text segments per copied write; the mirror lags by up to that much more.

        on_done(outbox index, seqs): hand the copied entries to someone else to delete (the gateway
        process, whose requests write the same file under one lock) instead of deleting them here;
        this worker then never writes the primary's file on the normal path. Handed-over entries stay
        out of its batches for HANDOVER_S; one not deleted by then is copied again (idempotent).

        write_scope(): entered around every write (a transaction holds a lock others
        may wait for); on_start(): called first in the worker's thread. The gateway's child process
        uses them to read and prepare at idle priority and write at normal priority.

        policy: the classification policy of copies into MemoryOS (default: the built-in one, as
        `cutover migrate`); as_of(entry): the as-of of an entry's copy (default: its enqueue time,
        to the second, so a retried copy is the same row)."""
        super().__init__(name="mirror-worker", daemon=True)
        self.outboxes = outboxes if isinstance(outboxes, list) else [outboxes]
        self.stores, self.on_failure, self.idle_s = stores, on_failure, idle_s
        self.settle_s, self.done_flush_s = settle_s, done_flush_s
        self.batch_wait_s = batch_wait_s
        self.on_done, self.write_scope, self.on_start = on_done, write_scope, on_start
        self._handed: dict[int, dict[int, float]] = {i: {} for i in range(len(self.outboxes))}
        self._seen = {i: 0 for i in range(len(self.outboxes))}  # highest seq handled per outbox
        self._deferred: dict[int, set[int]] = {i: set() for i in range(len(self.outboxes))}  # put off by us
        self.stop_event = threading.Event()
        self.policy = policy if policy is not None else load_policy()
        self.as_of = as_of if as_of is not None else (lambda e: int(e.enqueued_at) * 1000)
        self._builders: dict[int, Builder] = {}
        self.copied = 0
        self._pending: dict[int, set[int]] = {i: set() for i in range(len(self.outboxes))}
        self._pending_since: float | None = None

    def flush_done(self, force: bool = True) -> None:
        """Delete the copied entries still waiting in `_pending` (all, or when they are due)."""
        if self._pending_since is None:
            return
        total = sum(len(p) for p in self._pending.values())
        if not force and total < 2000 and time.monotonic() - self._pending_since < self.done_flush_s:
            return
        now = time.monotonic()
        for i, seqs in self._pending.items():
            if seqs:
                if self.on_done is None:
                    with self.write_scope():
                        self.outboxes[i].done(sorted(seqs))
                else:
                    self.on_done(i, sorted(seqs))
                    handed = self._handed[i]
                    for s in [s for s, t in handed.items() if now - t > HANDOVER_S]:
                        del handed[s]
                    handed.update(dict.fromkeys(seqs, now))
                seqs.clear()
        self._pending_since = None

    def drain_once(self) -> int:
        return sum(self._drain(box, i) for i, box in enumerate(self.outboxes))

    def _drain(self, outbox: Outbox, index: int = 0) -> int:
        """One batch: puts are copied per target in one transaction (rows between SQLite stores).

        Seqs only grow and commit in order (one SQLite writer at a time), so the scan starts after
        the highest seq already handled, or just before the lowest entry this worker put off (to
        wait or to retry); only then are entries in flight (copied, not yet deleted) fetched again
        and skipped here."""
        pending, handed, deferred = self._pending[index], self._handed[index], self._deferred[index]
        after = min(deferred) - 1 if deferred else self._seen[index]
        skip = len(pending) + len(handed) if deferred else 0
        entries = [e for e in outbox.due(BATCH + skip, after=after) if e.seq not in pending and e.seq not in handed]
        if not entries:
            return 0
        self._seen[index] = max(self._seen[index], entries[-1].seq)
        done: list[int] = []
        wait: list[int] = []
        puts: dict[str, list[tuple[Entry, Row | Record]]] = {}
        now = time.time()
        current = self._fetch(entries)  # per source: key -> stored row (None: absent)
        for e in entries:
            try:
                rec = (
                    current[e.source][(e.namespace, e.id)]
                    if e.source in current
                    else self.stores[e.source].get(e.namespace, e.id)
                )
                settled = now - e.enqueued_at >= self.settle_s
                if e.op == "delete":
                    if rec is None:
                        with self.write_scope():
                            self.stores[e.target].delete(e.namespace, e.id)
                        done.append(e.seq)
                    else:
                        (done if settled else wait).append(e.seq)  # settled: the delete never happened
                elif rec is None:
                    (done if settled else wait).append(e.seq)  # settled: the write never happened
                else:
                    puts.setdefault(e.target, []).append((e, rec))
            except (StoreError, sqlite3.Error, OSError) as exc:
                self._failed(outbox, index, e, exc)
        if wait:
            with self.write_scope():
                outbox.later(wait, self.idle_s)
            deferred.update(wait)
        for target, items in puts.items():
            store = self.stores[target]
            copies = [c for _, c in items]  # rows from a SQLite source, else records
            try:
                if getattr(store, "name", target) == "memoryos":
                    copies = [self._memoryos_row(e, c) for e, c in items]
                with self.write_scope():
                    if _holds_rows(store) and _all_rows(copies):
                        store.put_rows(copies)  # rows as stored: no record built only to be written again
                    else:
                        recs = [c if isinstance(c, Record) else SqliteStore._record(c) for c in copies]
                        if hasattr(store, "put_many") and len(recs) > 1:
                            store.put_many(recs)
                        else:
                            for rec in recs:
                                store.put(rec)
                done += [e.seq for e, _ in items]
            except (StoreError, sqlite3.Error, OSError) as exc:
                for e, _ in items:
                    self._failed(outbox, index, e, exc)
        deferred.difference_update(done)
        if done:
            if self.done_flush_s > 0 or self.on_done is not None:
                pending.update(done)
                if self._pending_since is None:
                    self._pending_since = time.monotonic()
            else:
                with self.write_scope():
                    outbox.done(done)
            self.copied += len(done)
        return len(entries)

    def _memoryos_row(self, e: Entry, copy: Row | Record) -> Row:
        """The MemoryOS row of a legacy row or record, built as migrate builds it."""
        at = self.as_of(e)
        builder = self._builders.get(at)
        if builder is None:
            if len(self._builders) > 16:
                self._builders.clear()
            builder = self._builders[at] = Builder(self.policy, at)
        return builder.row(copy.dump() if isinstance(copy, Record) else legacy_of_row(copy))[0]

    def _fetch(self, entries: list[Entry]) -> dict[str, dict[tuple[str, str], Row | None]]:
        """The sources' current state of the batch's keys, one query per SQLite source, as rows (a
        source that fails here, or is not SQLite, is asked per entry instead, so a failure lands on
        each entry)."""
        keys: dict[str, list[tuple[str, str]]] = {}
        for e in entries:
            keys.setdefault(e.source, []).append((e.namespace, e.id))
        found: dict[str, dict[tuple[str, str], Row | None]] = {}
        for source, ks in keys.items():
            store = self.stores[source]
            if _holds_rows(store):
                try:
                    got = store.get_rows(ks)
                except (StoreError, sqlite3.Error, OSError):
                    continue
                found[source] = {k: got.get(k) for k in ks}
        return found

    def _failed(self, outbox: Outbox, index: int, e: Entry, exc: Exception) -> None:
        with self.write_scope():
            dead = outbox.failed(e, str(exc))
        deferred = self._deferred[index]
        if dead:
            deferred.discard(e.seq)
        else:
            deferred.add(e.seq)
        self.on_failure(e.target, "dead_letter" if dead else type(exc).__name__)

    def run(self) -> None:
        self.on_start()
        while not self.stop_event.is_set():
            try:
                n = self.drain_once()
                self.flush_done(force=False)
            except sqlite3.Error:
                n = 0
            if n == 0:
                self.stop_event.wait(self.idle_s)
            elif n < BATCH and self.batch_wait_s > 0:
                self.stop_event.wait(self.batch_wait_s)
        try:
            self.flush_done()
        except sqlite3.Error:
            pass  # copied again at the next start: idempotent

    def stop(self) -> None:
        self.stop_event.set()
