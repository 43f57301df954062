"""The MemoryOS store: tiers, heat and relevance on SQLite; a recall heats what it returns."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from cutover.store.records import MAX_LIMIT, RecallQuery, Record, now_ms
from cutover.store.rows import METADATA, R_COLUMNS, Row, with_metadata
from cutover.store.schema import BM25, fts_query
from cutover.store.sqlite import SqliteStore

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
        self._touched: list[list[Any]] = []  # [now, namespace, [ids]] per recall
        self._pending: dict[tuple[str, str], list[int]] = {}  # (namespace, id) -> [times returned, last access]
        self._pending_recalls = 0  # the recalls folded into _pending
        self._touch_lock = threading.Lock()
        self._heat_write = threading.Lock()  # one writer of the pending heat at a time
        self._flusher: threading.Thread | None = None

    @staticmethod
    def _with_mem_os(metadata: dict[str, Any]) -> dict[str, Any] | None:
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

    def _prepare_row(self, row: Row) -> Row:
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
