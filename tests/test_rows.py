"""The record row layout, frozen: a fixed corpus of varied records, written through the public paths
(a store's put, migrate from a JSONL export and from a legacy store, into a store and into an
export), gives the same bytes as when the digests were taken. A refactor of the row codec must not
move them."""

from __future__ import annotations

import hashlib
import sqlite3

import orjson

from cutover.migration import workers
from cutover.migration.migrate import migrate
from cutover.migration.options import Options
from cutover.migration.tiering import load_policy
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import Record
from cutover.store.rows import COLUMNS

AS_OF = 1_780_000_000_000
DAY = 86_400_000


def corpus() -> list[dict]:
    """~20 records that between them use every field, both absent and present."""
    out: list[dict] = []
    for i in range(20):
        rec: dict = {"id": f"r{i:02d}", "namespace": f"agents/a{i % 3}", "observed_at": AS_OF - i * 7 * DAY}
        if i % 2:
            rec["text"] = f"note {i} about apples, Äpfel and 苹果"
        if i % 3 == 0:
            rec["tags"] = ["b", "a", "persona:cook", "long_term" if i % 9 == 0 else "x"]
        if i % 4 == 1:
            rec["class"] = ("semantic", "working", "procedural", "episodic")[i % 4]
        if i % 5 == 2:
            rec["content"] = {"n": i, "f": i / 3, "nested": [1, None, True, {"k": "v"}], "big": 2**62}
        if i % 6 == 3:
            rec["metadata"] = {"origin": "import", "mem_os": {"tier": "long", "heat": 2.5}}
        if i % 7 == 4:
            rec["metadata"] = {"mem_os": {"tier": "bogus", "chain_id": "c1", "last_accessed_at": AS_OF - 5}}
        if i % 8 == 5:
            rec["expires_at"] = AS_OF + DAY
        if i % 5 == 0:
            rec["source"] = "jido"
            rec["kind"] = "fact"
        if i % 4 == 2:
            rec["version"] = i
        out.append(rec)
    return out


def _table_digest(path) -> str:
    with sqlite3.connect(path) as c:
        rows = c.execute(f"SELECT {COLUMNS} FROM records ORDER BY namespace, id").fetchall()
    return hashlib.sha256(orjson.dumps(rows)).hexdigest()[:16]


def _migrate(source: str, target: str) -> None:
    migrate(Options(source=source, target=target, policy=load_policy(None), as_of=AS_OF, workers=1))


def test_the_rows_of_a_fixed_corpus_are_frozen(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "_worker", {})  # in-process runs set it: left as other tests expect it
    records = corpus()
    (tmp_path / "e.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    legacy, mos = LegacyStore(tmp_path / "legacy.db"), MemoryOSStore(tmp_path / "mos.db")
    for r in records:
        legacy.put(Record.model_validate(r))
        mos.put(Record.model_validate(r))
    _migrate(f"jsonl:{tmp_path / 'e.jsonl'}", f"sqlite:{tmp_path / 'from_jsonl.db'}")
    _migrate(f"sqlite:{tmp_path / 'legacy.db'}", f"sqlite:{tmp_path / 'from_legacy.db'}")
    _migrate(f"jsonl:{tmp_path / 'e.jsonl'}", f"jsonl:{tmp_path / 'out.jsonl'}")
    copied = MemoryOSStore(tmp_path / "copied.db")  # the mirror worker's copy path
    copied.put_rows(list(legacy.get_rows([(r["namespace"], r["id"]) for r in records]).values()))
    scanned = orjson.dumps([r.dump() for r in MemoryOSStore(tmp_path / "from_legacy.db").scan()])
    got = {
        "legacy put": _table_digest(tmp_path / "legacy.db"),
        "memoryos put": _table_digest(tmp_path / "mos.db"),
        "migrate jsonl->sqlite": _table_digest(tmp_path / "from_jsonl.db"),
        "migrate sqlite->sqlite": _table_digest(tmp_path / "from_legacy.db"),
        "migrate jsonl->jsonl": hashlib.sha256((tmp_path / "out.jsonl").read_bytes()).hexdigest()[:16],
        "memoryos put_rows": _table_digest(tmp_path / "copied.db"),
        "scan": hashlib.sha256(scanned).hexdigest()[:16],
    }
    assert got == FROZEN


FROZEN = {
    "legacy put": "48a7c038be58adb8",
    "memoryos put": "9f8552c7d72361b7",
    "migrate jsonl->sqlite": "c6209478593b72ee",
    "migrate sqlite->sqlite": "c6209478593b72ee",
    "migrate jsonl->jsonl": "ef39fda9fc478b28",
    "memoryos put_rows": "9f8552c7d72361b7",
    "scan": "687358e9f73ba011",
}
