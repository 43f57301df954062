"""The legacy store: jido_memory's semantics on SQLite."""

from __future__ import annotations

from cutover.store.records import MAX_LIMIT, RecallQuery, Record, now_ms
from cutover.store.rows import COLUMNS
from cutover.store.schema import fts_query
from cutover.store.sqlite import SqliteStore


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
