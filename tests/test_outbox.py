"""The outbox and mirror worker on real SQLite stores, without the server."""

from __future__ import annotations

import itertools

from cutover.gateway.outbox import MirrorWorker, Outbox
from cutover.store.faults import FaultyStore
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import RecallQuery, Record


def setup(tmp_path, **outbox_kw):
    """A file outbox (as for a remote primary); the in-store outbox is covered below and by the gateway."""
    legacy, memoryos = FaultyStore(LegacyStore(tmp_path / "l.db")), FaultyStore(MemoryOSStore(tmp_path / "m.db"))
    box = Outbox(tmp_path / "o.db", **outbox_kw)
    failures = []
    worker = MirrorWorker(
        box, {"legacy": legacy, "memoryos": memoryos}, on_failure=lambda t, r: failures.append((t, r))
    )
    return legacy, memoryos, box, worker, failures


def r(i, v=1, text="t"):
    return Record(id=f"r{i}", namespace="n", text=text, version=v)


def test_a_put_row_never_deletes_what_a_newer_write_created(tmp_path):
    _legacy, memoryos, box, worker, _ = setup(tmp_path)
    worker.settle_s = 0  # the row is old: legacy never got r1
    box.enqueue("legacy", "memoryos", "n", "r1")
    memoryos.put(r(1, 5, "created in memoryos-primary mode"))
    worker.drain_once()
    assert memoryos.get("n", "r1").text == "created in memoryos-primary mode" and box.depth() == {}


def test_a_row_waits_for_its_primary_write_to_become_visible(tmp_path):
    legacy, memoryos, box, worker, _ = setup(tmp_path)
    box.enqueue("legacy", "memoryos", "n", "r1")  # enqueued, primary write not committed yet
    worker.drain_once()
    assert box.depth() == {"memoryos": 1}  # young row: asked again, not dropped
    legacy.put(r(1))
    import time

    time.sleep(worker.idle_s + 0.01)
    worker.drain_once()
    assert memoryos.get("n", "r1") is not None and box.depth() == {}


def test_delete_rows_delete_only_what_the_source_no_longer_has(tmp_path):
    legacy, memoryos, box, worker, _ = setup(tmp_path)
    for s in (legacy, memoryos):
        s.put(r(1))
        s.put(r(2))
    legacy.delete("n", "r1")
    box.enqueue("legacy", "memoryos", "n", "r1", op="delete")
    box.enqueue("legacy", "memoryos", "n", "r2", op="delete")  # legacy still has r2: keep it
    worker.drain_once()
    assert memoryos.get("n", "r1") is None and memoryos.get("n", "r2") is not None


def test_retries_back_off_then_dead_letter_then_requeue(tmp_path):
    legacy, memoryos, box, worker, failures = setup(tmp_path, max_attempts=3, backoff_s=0.0001)
    legacy.put(r(1))
    box.enqueue("legacy", "memoryos", "n", "r1")
    memoryos.set(outage=True)
    import time

    for _ in range(3):
        time.sleep(0.01)
        worker.drain_once()
    assert box.depth() == {} and len(box.dead_letters()) == 1 and failures[-1] == ("memoryos", "dead_letter")
    assert "outage" in box.dead_letters()[0]["last_error"]
    memoryos.set()
    assert box.requeue_dead() == 1
    worker.drain_once()
    assert memoryos.get("n", "r1") is not None and box.depth() == {}


def test_stale_versions_do_not_overwrite(tmp_path):
    legacy, memoryos, box, worker, _ = setup(tmp_path)
    memoryos.put(r(1, 4, "newer"))
    legacy.put(r(1, 2, "older"))
    box.enqueue("legacy", "memoryos", "n", "r1")
    worker.drain_once()
    assert memoryos.get("n", "r1").text == "newer"


def test_in_store_outbox_commits_the_write_and_its_mirror_row_together(tmp_path):
    legacy, memoryos = LegacyStore(tmp_path / "l.db"), MemoryOSStore(tmp_path / "m.db")
    box = Outbox(store=legacy)
    worker = MirrorWorker([box], {"legacy": legacy, "memoryos": memoryos})
    legacy.put(r(1), mirror_to="memoryos")
    legacy.put(r(2))  # no mirror asked: no row
    assert box.depth() == {"memoryos": 1}
    worker.drain_once()
    assert memoryos.get("n", "r1") is not None and memoryos.get("n", "r2") is None
    legacy.delete("n", "r1", mirror_to="memoryos")
    worker.drain_once()
    assert memoryos.get("n", "r1") is None and box.depth() == {}


def test_batched_done_keeps_copied_entries_out_and_deletes_them_later(tmp_path):
    """done_flush_s: copied entries leave the outbox in one later transaction, are never copied twice
    meanwhile, and a worker that stops deletes what it has copied."""
    legacy, memoryos = LegacyStore(tmp_path / "l.db"), MemoryOSStore(tmp_path / "m.db")
    box = Outbox(None, store=legacy)
    for i in range(30):
        legacy.put(Record(id=f"r{i}", namespace="n", text=f"t{i}"), mirror_to="memoryos")
    worker = MirrorWorker([box], {"legacy": legacy, "memoryos": memoryos}, done_flush_s=60)
    assert worker.drain_once() == 30 and worker.copied == 30
    assert box.depth() == {"memoryos": 30}  # copied, not yet deleted
    assert worker.drain_once() == 0 and worker.copied == 30  # and not fetched again
    assert memoryos.count() == 30
    worker.flush_done()
    assert box.depth() == {}


def test_handed_over_entries_are_deleted_by_the_receiver_never_by_the_worker(tmp_path):
    """on_done (the gateway's child process): the worker hands copied entries over instead of
    deleting them, keeps them out of its batches meanwhile, and never writes the outbox itself."""
    legacy, memoryos = LegacyStore(tmp_path / "l.db"), MemoryOSStore(tmp_path / "m.db")
    box = Outbox(None, store=legacy)
    for i in range(25):
        legacy.put(Record(id=f"r{i}", namespace="n", text=f"t{i}"), mirror_to="memoryos")
    handed: list[tuple[int, list[int]]] = []

    def refuse(seqs):
        raise AssertionError("the worker wrote the outbox")

    box.done = refuse
    worker = MirrorWorker(
        [box],
        {"legacy": legacy, "memoryos": memoryos},
        done_flush_s=60,
        on_done=lambda i, seqs: handed.append((i, seqs)),
    )
    assert worker.drain_once() == 25 and memoryos.count() == 25
    worker.flush_done()
    assert [i for i, _ in handed] == [0] and len(handed[0][1]) == 25
    # not yet deleted by the receiver: still in the outbox, and still not fetched again
    assert box.depth() == {"memoryos": 25} and worker.drain_once() == 0 and worker.copied == 25
    Outbox.done(box, handed[0][1])  # the receiver deletes them (the gateway, on its own connection)
    assert box.depth() == {}
    legacy.put(Record(id="late", namespace="n", text="late"), mirror_to="memoryos")
    assert worker.drain_once() == 1 and worker.copied == 26 and memoryos.get("n", "late").text == "late"


def test_entries_put_off_below_later_copies_are_still_copied_once_due(tmp_path):
    """The scan resumes after the highest seq handled, but never skips an entry put off earlier:
    one waiting for its write and one retrying after a failure, both below entries already copied."""
    import time

    legacy, memoryos, box, worker, failures = setup(tmp_path, backoff_s=0.05)
    box.enqueue("legacy", "memoryos", "n", "r1")  # its write is not visible yet: put off
    legacy.put(r(2))
    box.enqueue("legacy", "memoryos", "n", "r2")
    worker.drain_once()
    assert memoryos.get("n", "r2") is not None and memoryos.get("n", "r1") is None and box.depth() == {"memoryos": 1}
    legacy.put(r(1))
    memoryos.set(outage=True)  # r1's copy fails once: retried with backoff
    legacy.put(r(3))
    box.enqueue("legacy", "memoryos", "n", "r3")
    time.sleep(worker.idle_s + 0.01)
    worker.drain_once()
    assert failures and box.depth() == {"memoryos": 2}
    memoryos.set()
    legacy.put(r(4))
    box.enqueue("legacy", "memoryos", "n", "r4")
    worker.drain_once()  # r4 is copied at once; r1 and r3 wait for their backoff
    assert memoryos.get("n", "r4") is not None and memoryos.get("n", "r1") is None
    time.sleep(0.12)
    worker.drain_once()
    assert [memoryos.get("n", f"r{i}") is not None for i in (1, 2, 3, 4)] == [True] * 4 and box.depth() == {}
    assert worker.copied == 4  # each once


def test_one_read_for_the_batch_and_a_failing_source_fails_each_entry(tmp_path):
    legacy, memoryos, box, worker, failures = setup(tmp_path)
    for i in range(5):
        legacy.put(r(i))
        box.enqueue("legacy", "memoryos", "n", f"r{i}")
    assert set(legacy.get_rows([("n", "r1"), ("n", "r3"), ("n", "absent"), ("other", "r1")])) == {
        ("n", "r1"),
        ("n", "r3"),
    }
    legacy.set(outage=True)
    worker.drain_once()
    assert len(failures) == 5 and box.depth() == {"memoryos": 5} and memoryos.count() == 0


def test_a_copy_as_rows_stores_what_a_copy_as_records_stores(tmp_path):
    """The worker copies between SQLite stores as rows (get_rows, put_rows), not records: each store's
    own rules (MemoryOS: a complete `metadata.mem_os`, its tier, heat and last access columns) give
    the same stored rows both ways, whatever valid metadata holds (a `mem_os` that is not an object
    is refused at the door: tests/test_hostile.py); the version rule holds too."""
    metas = [
        {},
        {"k": [1, 2.5]},
        {"mem_os": None},
        {"mem_os": {"tier": "bogus", "heat": 2}},
        {"mem_os": {"tier": "mid", "heat": 3.5, "last_accessed_at": 17}},
        {"mem_os": {"heat": 1}, "x": "é"},
    ]
    legacy = LegacyStore(tmp_path / "l.db")
    legacy.put_many(
        [
            Record(id=f"r{i}", namespace="n", text=f"t {i}", metadata=m, tags=["a"], content={"c": i}, version=2)
            for i, m in enumerate(metas)
        ]
    )
    keys = [("n", f"r{i}") for i in range(len(metas))] + [("n", "absent")]
    rows = legacy.get_rows(keys)
    assert set(rows) == set(keys[:-1]) and all(type(row) is tuple for row in rows.values())
    by_rows, by_records = MemoryOSStore(tmp_path / "a.db"), MemoryOSStore(tmp_path / "b.db")
    assert by_rows.put_rows(list(rows.values())) == len(metas)
    by_records.put_many([legacy.get(*k) for k in keys[:-1]])
    stored = (
        "SELECT namespace, id, version, class, kind, text, content, tags, source, observed_at, expires_at, "
        "metadata, tier, heat, last_accessed_at FROM records ORDER BY id"
    )
    assert by_rows._conn().execute(stored).fetchall() == by_records._conn().execute(stored).fetchall()
    assert (
        by_rows.get("n", "r0").metadata["mem_os"]["tier"] == "short"
        and by_rows.get("n", "r4").metadata["mem_os"]["heat"] == 3.5
    )
    assert [
        r.text for r in by_rows.recall(RecallQuery(namespace="n", query="t", limit=10))
    ]  # the full-text index has them
    back = LegacyStore(tmp_path / "back.db")  # memoryos-primary mode mirrors back: rows as MemoryOS stored them
    back.put_rows(list(by_rows.get_rows(keys).values()))
    assert back._conn().execute(stored).fetchall() == by_rows._conn().execute(stored).fetchall()
    older = LegacyStore(tmp_path / "older.db")  # the version rule: a copy of version 1 leaves version 2
    older.put(Record(id="r0", namespace="n", text="older", version=1))
    by_rows.put_rows(list(older.get_rows([("n", "r0")]).values()))
    assert (by_rows.get("n", "r0").version, by_rows.get("n", "r0").text) == (2, "t 0")


def test_a_steady_stream_is_copied_in_batches_of_rate_times_the_batch_wait(tmp_path):
    """batch_wait_s: the running worker waits after each part batch, so 300 writes over 1.5 s go in a
    handful of transactions (without it, one every idle_s = 50 ms or faster), and every write lands."""
    import time

    legacy, memoryos = LegacyStore(tmp_path / "l.db"), MemoryOSStore(tmp_path / "m.db")
    box = Outbox(None, store=legacy)
    batches: list[int] = []
    put_rows = memoryos.put_rows
    memoryos.put_rows = lambda rows: batches.append(len(rows)) or put_rows(rows)
    worker = MirrorWorker([box], {"legacy": legacy, "memoryos": memoryos}, batch_wait_s=0.3)
    worker.start()
    try:
        start = time.monotonic()
        for i in range(300):  # 200 writes/s
            time.sleep(max(0.0, start + i / 200 - time.monotonic()))
            legacy.put(Record(id=f"r{i}", namespace="n", text=f"t{i}"), mirror_to="memoryos")
        elapsed = time.monotonic() - start
        end = time.monotonic() + 10
        while worker.copied < 300 and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        worker.stop()
        worker.join(5)
    assert worker.copied == 300 and memoryos.count() == 300 and box.depth() == {}
    assert sum(batches) <= 300 and len(batches) <= elapsed / 0.3 + 3, batches  # ~60 a transaction


def test_copied_entries_are_deleted_in_short_transactions(tmp_path):
    """done(): at most DONE_CHUNK entries a transaction (each holds the requests' writer lock), one
    range delete per run of consecutive seqs in it; every entry handed over goes, no other."""
    from cutover.gateway.outbox import DONE_CHUNK

    box = Outbox(tmp_path / "o.db")
    for i in range(500):
        box.enqueue("legacy", "memoryos", "n", f"r{i}")
    statements: list[str] = []
    box._conn().set_trace_callback(statements.append)
    seqs = list(range(1, 301)) + list(range(305, 420, 2))  # a run of 300, then 58 apart
    box.done(seqs)
    commits = statements.count("COMMIT")
    assert commits == -(-len(seqs) // DONE_CHUNK) == 6
    assert sum(s.startswith("DELETE") for s in statements) == 5 + 58  # 300 in runs of 64 (the last 44), 58 lone ones
    left = {row[0] for row in box._conn().execute("SELECT seq FROM outbox")}
    assert left == set(range(1, 501)) - set(seqs)


def test_the_wal_starts_over_under_a_steady_stream_of_writes(tmp_path):
    """keep_wal: a checkpoint beside steady writes never catches up, so SQLite would never rewind the
    WAL; the step under the writer lock lets the next write start it over (frame count drops), and
    no write is lost."""
    import threading
    import time

    store = LegacyStore(tmp_path / "l.db", autocheckpoint=False)
    stop = threading.Event()
    written = []

    def writer():
        i = 0
        while not stop.is_set():
            store.put(Record(id=f"r{i}", namespace="n", text=f"t{i} " * 20), mirror_to="memoryos")
            written.append(i)
            i += 1
            time.sleep(0.001)

    t = threading.Thread(target=writer)
    t.start()
    try:
        frames = []
        for _ in range(12):
            time.sleep(0.15)
            frames.append(store.keep_wal(restart_frames=100))
    finally:
        stop.set()
        t.join()
    assert any(b < a for a, b in itertools.pairwise(frames)), frames  # started over at least once
    assert store.count() == len(written) and len(Outbox(None, store=store).due(100000)) == len(written)


def test_a_batch_mirrored_to_a_remote_store_lands_one_call_a_record(tmp_path):
    """A remote primary's mirror target over HTTP (a real `cutover serve` as the remote store): a batch
    of several writes is copied one call a record (the API has no batch); the worker once died on it
    (AttributeError: no put_many)."""
    from cutover.store.remote import HttpStore

    from .gatewayproc import GatewayProcess, project_copy

    data = tmp_path / "remote-data"
    data.mkdir()
    remote = GatewayProcess(project_copy(tmp_path), data, "pre-deployment").start()
    try:
        legacy = FaultyStore(LegacyStore(tmp_path / "l.db"))
        memoryos = FaultyStore(HttpStore("memoryos", remote.url))
        box = Outbox(tmp_path / "o.db")
        failures: list[tuple[str, str]] = []
        worker = MirrorWorker(
            box, {"legacy": legacy, "memoryos": memoryos}, on_failure=lambda t, r: failures.append((t, r))
        )
        for i in range(6):
            legacy.put(r(i, text=f"note {i}"))
            box.enqueue("legacy", "memoryos", "n", f"r{i}")
        worker.drain_once()
        assert failures == [] and box.depth() == {} and box.dead_letters() == []
        got = [memoryos.get("n", f"r{i}") for i in range(6)]
        assert [g.text if g else None for g in got] == [f"note {i}" for i in range(6)]
    finally:
        remote.stop()
