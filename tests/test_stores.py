"""The SQLite stores' recall on real SQLite: the query plan of each recall shape, MemoryOS's ranking
(relevance, heat, recency, tier) against the design's formula computed apart, the namespace's own
vocabulary in the full-text index, the upgrade of store files written before it, the index's upkeep,
and heat updates folded per record."""

from __future__ import annotations

import math
import random
import sqlite3
import time

import pytest

from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import TIER_WEIGHT, MemoryOSStore
from cutover.store.records import RecallQuery, Record, now_ms
from cutover.store.schema import BM25, fts_query, ns_prefix

WORDS = ["apple", "travel", "plan", "meeting", "budget", "alpha", "beta", "river", "mountain", "coffee", "delta"]
DAY = 86_400_000


def corpus(n: int = 600, namespaces: int = 6, seed: int = 3) -> list[Record]:
    rng = random.Random(seed)
    now = now_ms()
    out = []
    for i in range(n):
        tier = rng.choice(["short", "mid", "long"])
        out.append(
            Record(
                id=f"r{i}",
                namespace=f"agents/{i % namespaces}",
                text=" ".join(rng.choices(WORDS, k=rng.randint(3, 12))),
                observed_at=now - rng.randint(0, 40) * DAY,
                metadata={"mem_os": {"tier": tier, "heat": float(rng.choice([0, 0, 1, 3, 12]))}},
            )
        )
    return out


def plan_of(store, sql: str, args) -> list[str]:
    return [row[3] for row in store._conn().execute("EXPLAIN QUERY PLAN " + sql, args)]


def design_ranking(store: MemoryOSStore, q: RecallQuery, now: int) -> list[str]:
    """The design's ranking, computed in Python from the candidates' columns: relevance (bm25 of the
    text) relative to the best candidate's, 0.2 ln(1 + heat), 0.3 e^(-age in days / 7), tier weight."""
    where, args = store._filters(q, now)
    n = q.limit
    match = fts_query(q.namespace, q.query)
    if match:
        rows = store._conn().execute(
            f"SELECT r.id, r.heat, r.observed_at, r.tier, -{BM25} FROM records_fts JOIN records r "
            f"ON r.rid = records_fts.rowid WHERE records_fts MATCH ? AND {where} ORDER BY {BM25} LIMIT ?",
            [match, *args, n * store.CANDIDATES],
        )
    else:
        rows = store._conn().execute(
            f"SELECT r.id, r.heat, r.observed_at, r.tier, 0.0 FROM records r WHERE {where} "
            "ORDER BY r.heat DESC, r.observed_at DESC LIMIT ?",
            [*args, n * store.CANDIDATES],
        )
    rows = rows.fetchall()
    top = max((r[4] for r in rows), default=0.0) or 1.0

    def score(r) -> float:
        age_days = max(now - r[2], 0) / DAY
        return r[4] / top + 0.2 * math.log1p(r[1]) + 0.3 * math.exp(-age_days / 7) + TIER_WEIGHT.get(r[3] or "", 0)

    return [r[0] for r in sorted(rows, key=lambda r: (-score(r), r[0]))[:n]]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    legacy, memoryos = LegacyStore(d / "l.db"), MemoryOSStore(d / "m.db")
    records = corpus()
    legacy.put_many(records)
    memoryos.put_many(records)
    return legacy, memoryos


@pytest.mark.parametrize("query", ["apple river", "coffee", "", "zebra"])
def test_memoryos_ranks_as_the_design_says(stores, query):
    _, memoryos = stores
    now = now_ms()
    for ns in range(6):
        q = RecallQuery(namespace=f"agents/{ns}", query=query, limit=7)
        got = [r.id for r in memoryos.recall(q, touch=False)]
        assert got == design_ranking(memoryos, q, now)
        if query == "zebra":
            assert got == []
        else:
            assert len(got) == 7 and all(int(i[1:]) % 6 == ns for i in got)  # its namespace only


def test_a_hot_long_term_record_outranks_an_equal_cold_short_term_one(tmp_path):
    store = MemoryOSStore(tmp_path / "m.db")
    now = now_ms()
    for i, (tier, heat) in enumerate([("short", 0.0), ("long", 9.0), ("mid", 0.0)]):
        store.put(
            Record(
                id=f"x{i}",
                namespace="n",
                text="apple pie",
                observed_at=now - DAY,
                metadata={"mem_os": {"tier": tier, "heat": heat}},
            )
        )
    assert [r.id for r in store.recall(RecallQuery(namespace="n", query="apple"), touch=False)] == ["x1", "x2", "x0"]


def test_both_stores_recall_through_the_namespace_vocabulary_and_the_recency_index(stores):
    legacy, memoryos = stores
    for store in (legacy, memoryos):
        statements: list[str] = []
        store._conn().set_trace_callback(statements.append)
        store.recall(
            RecallQuery(namespace="agents/1", query="apple"), **({"touch": False} if store is memoryos else {})
        )
        store.recall(RecallQuery(namespace="agents/1"), **({"touch": False} if store is memoryos else {}))
        store._conn().set_trace_callback(None)
        with_text, without = [s for s in statements if not s.startswith("--")]  # not the index's own
        # the traced statement has its parameters inlined: plan it as it ran
        text_plan = plan_of(store, with_text, ())
        assert any("VIRTUAL TABLE INDEX" in p for p in text_plan), text_plan
        assert not any(p.split()[:2] == ["SCAN", "r"] for p in text_plan), text_plan  # no pass over every record
        assert f'"{ns_prefix("agents/1")}apple"' in with_text  # the word in the namespace's vocabulary
        plain = plan_of(store, without, ())
        assert any("records_recent (namespace=?)" in p for p in plain), plain
    # every term of the index is a word of one namespace: a prefix of the namespace's, then the word
    c = memoryos._conn()
    c.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, records_fts, row)")
    prefixes = {ns_prefix(f"agents/{i}") for i in range(6)}
    terms = [(t[0][:12], t[0][12:], t[1]) for t in c.execute("SELECT term, doc FROM temp.vocab")]
    assert {p for p, _, _ in terms} == prefixes and {w for _, w, _ in terms} == set(WORDS)
    assert sum(d for _, _, d in terms) == sum(len(set(r.text.split())) for r in corpus())


@pytest.mark.parametrize(
    "text, query, found",
    [
        ("Café-au-lait, naïve_user: 42!", "cafe", True),  # FTS5 folds case and diacritics on both sides
        ("Café-au-lait, naïve_user: 42!", "USER", True),
        ("Café-au-lait, naïve_user: 42!", "naïve_user", True),  # a phrase of two words
        ("Café-au-lait, naïve_user: 42!", "42 lait", True),
        ("Café-au-lait, naïve_user: 42!", "user_naïve", False),
        ("東京 тест ünïcödé", "тест", True),
        ("東京 тест ünïcödé", "unicode", True),
        ("apple", "apples", False),
    ],
)
def test_the_namespace_vocabulary_finds_what_the_words_of_a_text_are(tmp_path, text, query, found):
    for store in (LegacyStore(tmp_path / "l.db"), MemoryOSStore(tmp_path / "m.db")):
        store.put(Record(id="x", namespace="odd.ns:x@y/z~1", text=text))
        store.put(Record(id="y", namespace="other", text=text))
        got = [(r.namespace, r.id) for r in store.recall(RecallQuery(namespace="odd.ns:x@y/z~1", query=query))]
        assert got == ([("odd.ns:x@y/z~1", "x")] if found else []), (store.name, query)


OLD_RECORDS = """
CREATE TABLE records(rid INTEGER PRIMARY KEY, namespace TEXT NOT NULL, id TEXT NOT NULL,
  version INTEGER NOT NULL, class TEXT NOT NULL, kind TEXT, text TEXT NOT NULL, content TEXT,
  tags TEXT NOT NULL, source TEXT, observed_at INTEGER NOT NULL, expires_at INTEGER,
  metadata TEXT NOT NULL, tier TEXT, heat REAL NOT NULL DEFAULT 0, last_accessed_at INTEGER,
  UNIQUE(namespace, id));
"""
# the index of the plain text; then (one release) the same with the namespace as a token of its own
PLAIN_TEXT_INDEX = """
CREATE VIRTUAL TABLE records_fts USING fts5(text, content='records', content_rowid='rid');
CREATE TRIGGER records_ai AFTER INSERT ON records BEGIN
  INSERT INTO records_fts(rowid, text) VALUES (new.rid, new.text);
END;
"""
NAMESPACE_TOKEN_INDEX = """
ALTER TABLE records ADD COLUMN ns_key TEXT GENERATED ALWAYS AS ('ns' || hex(namespace)) VIRTUAL;
CREATE VIRTUAL TABLE records_fts USING fts5(text, ns_key, content='records', content_rowid='rid');
CREATE TRIGGER records_ai AFTER INSERT ON records BEGIN
  INSERT INTO records_fts(rowid, text, ns_key) VALUES (new.rid, new.text, new.ns_key);
END;
CREATE TRIGGER records_au AFTER UPDATE OF text ON records BEGIN
  INSERT INTO records_fts(records_fts, rowid, text, ns_key) VALUES ('delete', old.rid, old.text, old.ns_key);
  INSERT INTO records_fts(rowid, text, ns_key) VALUES (new.rid, new.text, new.ns_key);
END;
"""


@pytest.mark.parametrize("index", [PLAIN_TEXT_INDEX, NAMESPACE_TOKEN_INDEX], ids=["plain-text", "namespace-token"])
def test_a_store_written_before_the_namespace_vocabulary_is_upgraded_when_opened(tmp_path, index):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        OLD_RECORDS
        + index
        + """
        INSERT INTO records(namespace, id, version, class, text, tags, observed_at, metadata, tier)
          VALUES ('a', 'old1', 1, 'episodic', 'apple from before', '[]', 1, '{"mem_os":{"tier":"short"}}', 'short'),
                 ('b', 'old2', 1, 'episodic', 'apple elsewhere', '[]', 1, '{"mem_os":{"tier":"short"}}', 'short');
        """
    )
    old.close()
    store = MemoryOSStore(path)
    assert [r.id for r in store.recall(RecallQuery(namespace="a", query="apple"), touch=False)] == ["old1"]
    store.put(Record(id="new1", namespace="a", text="apple after"))
    store.put(Record(id="old1", namespace="a", text="river now", version=2))  # the update trigger
    assert [r.id for r in store.recall(RecallQuery(namespace="a", query="apple"), touch=False)] == ["new1"]
    assert [r.id for r in store.recall(RecallQuery(namespace="a", query="river"), touch=False)] == ["old1"]
    assert LegacyStore(path).recall(RecallQuery(namespace="b", query="apple"))[0].id == "old2"  # opened again: no-op
    cols = [c[1] for c in store._conn().execute("PRAGMA table_xinfo(records_fts)")]
    assert cols[0] == "terms"
    assert "ns_key" not in [c[1] for c in store._conn().execute("PRAGMA table_xinfo(records)")]
    assert store._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store._conn().execute("INSERT INTO records_fts(records_fts, rank) VALUES ('integrity-check', 1)")


def test_index_upkeep_merges_the_segments_of_one_record_writes_and_is_quiet_after(tmp_path):
    store = LegacyStore(tmp_path / "l.db")
    for i in range(300):  # a transaction each, as the gateway writes: a segment each, merged 4 at a time
        store.put(Record(id=f"r{i}", namespace=f"n{i % 3}", text=f"apple river w{i}"))
    c = store._conn()

    def segments() -> int:  # the index's b-trees: its data rows past the structure and averages records
        return c.execute("SELECT count(DISTINCT id >> 37) FROM records_fts_data WHERE id > 10").fetchone()[0]

    q = RecallQuery(namespace="n1", query="apple w4", limit=50)
    before, answer = segments(), [r.id for r in store.recall(q)]
    rounds = 0
    while store.keep_index() and rounds < 100:
        rounds += 1
    assert before >= 4 and segments() == 1 and 0 < rounds < 100, (before, segments(), rounds)
    assert [r.id for r in store.recall(q)] == answer
    seen = sqlite3.connect(tmp_path / "l.db")
    version = seen.execute("PRAGMA data_version").fetchone()[0]
    assert store.keep_index() == 0  # nothing to merge: nothing written, no reader's cache dropped
    assert seen.execute("PRAGMA data_version").fetchone()[0] == version
    c.execute("INSERT INTO records_fts(records_fts, rank) VALUES ('integrity-check', 1)")


def test_heat_updates_are_folded_per_record(tmp_path):
    store = MemoryOSStore(tmp_path / "m.db")
    store.TOUCH_EVERY_S = 3600  # no background flush: this test flushes
    store.TOUCH_CHUNK = 1  # a statement a record: the chunks are applied one after the other
    store.put(Record(id="a", namespace="n", text="apple"))
    store.put(Record(id="b", namespace="n", text="river"))
    for _ in range(3):
        store.recall(RecallQuery(namespace="n", query="apple"))
    store.recall(RecallQuery(namespace="n", query="river"))
    assert store.flush_heat() == 4  # touches taken
    a, b = store.get("n", "a"), store.get("n", "b")
    assert a.metadata["mem_os"]["heat"] == 3 and b.metadata["mem_os"]["heat"] == 1
    assert store._conn().execute("SELECT heat FROM records WHERE id='a'").fetchone()[0] == 3
    assert a.metadata["mem_os"]["last_accessed_at"] >= b.metadata["mem_os"]["last_accessed_at"] - 1000


def test_heat_is_folded_often_and_written_rarely_and_on_close(tmp_path):
    store = MemoryOSStore(tmp_path / "m.db")
    store.TOUCH_EVERY_S, store.HEAT_WRITE_EVERY_S = 0.01, 3600.0
    store.put(Record(id="a", namespace="n", text="apple"))
    other = sqlite3.connect(tmp_path / "m.db")  # a reader: its page cache is dropped by any write
    version = other.execute("PRAGMA data_version").fetchone()[0]
    for _ in range(5):
        store.recall(RecallQuery(namespace="n", query="apple"))
    deadline = time.monotonic() + 5
    while store._touched and time.monotonic() < deadline:  # folded by the background thread
        time.sleep(0.01)
    assert not store._touched and store._pending[("n", "a")][0] == 5 and store._pending_recalls == 5
    assert other.execute("PRAGMA data_version").fetchone()[0] == version  # nothing written meanwhile
    assert store.get("n", "a").metadata["mem_os"]["heat"] == 0
    store.close()  # the gateway's shutdown: the pending heat is written
    assert other.execute("PRAGMA data_version").fetchone()[0] != version
    assert store.get("n", "a").metadata["mem_os"]["heat"] == 5 and store._pending == {}
    store.HEAT_WRITE_EVERY_S = 0.05  # and by the background thread, every HEAT_WRITE_EVERY_S
    store.recall(RecallQuery(namespace="n", query="apple"))
    while store.get("n", "a").metadata["mem_os"]["heat"] != 6 and time.monotonic() < deadline + 5:
        time.sleep(0.02)
    assert store.get("n", "a").metadata["mem_os"]["heat"] == 6


def test_a_thread_that_ends_gives_its_connection_to_the_next_new_thread(tmp_path):
    import threading

    store = MemoryOSStore(tmp_path / "m.db")
    store.put(Record(id="a", namespace="n", text="apple"))
    seen: list[int] = []

    def work(leave_open: bool) -> None:
        c = store._conn()
        seen.append(id(c))
        assert [r.id for r in store.recall(RecallQuery(namespace="n", query="apple"), touch=False)] == ["a"]
        if leave_open:
            c.execute("BEGIN IMMEDIATE")  # a thread that ends inside a transaction

    for leave_open in (True, False, False):
        t = threading.Thread(target=work, args=(leave_open,))
        t.start()
        t.join()
    assert len(set(seen)) == 1 and len(store._idle) == 1  # one connection, reused by each new thread
    assert not store._idle[0].in_transaction  # rolled back when its thread ended: the writer lock is free
    store.put(Record(id="b", namespace="n", text="river"))


def test_a_decoded_row_is_the_record_model_construct_gives(stores):
    from cutover.store.records import stored_record

    _, memoryos = stores
    for rec in memoryos.recall(RecallQuery(namespace="agents/2", query="apple", limit=5), touch=False):
        fields = {name: getattr(rec, name) for name in Record.model_fields}
        built = Record.model_construct(**fields)
        assert rec == built and rec.dump() == built.dump()
        assert rec.model_fields_set == built.model_fields_set
        assert rec.wire() == rec.dump() and list(rec.wire()) == list(rec.dump())  # what the API answers
        copy = rec.model_copy(update={"version": rec.version + 1})
        assert copy.version == rec.version + 1 and copy.id == rec.id and rec.version == built.version
        assert stored_record(**fields) == built
        # a Record validated from the dump is the same record
        assert Record.model_validate(rec.dump()) == rec
