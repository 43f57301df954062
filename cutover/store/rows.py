"""The record row: how a record is laid out in a SQLite store's `records` table, both ways.

The one owner of the column order (`COLUMNS`) and of each column's encoding: JSON text for content,
tags and metadata, and the tier, heat and last access columns read from `metadata.mem_os`. The
stores, the migration (its builder, its SQLite source and target), the mirror worker and
`reconcile --repair` all encode and decode rows here, so a record is the same row whichever way it
arrives. `tests/test_rows.py` freezes the rows of a fixed corpus.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from cutover.store.records import Record, stored_record

COLUMNS = (
    "namespace, id, version, class, kind, text, content, tags, source, observed_at, expires_at, metadata, tier, "
    "heat, last_accessed_at"
)
COLUMN_NAMES = tuple(c.strip() for c in COLUMNS.split(","))
N_COLUMNS = len(COLUMN_NAMES)
R_COLUMNS = ", ".join(f"r.{c}" for c in COLUMN_NAMES)  # the same, of a table named r
# positions in a row (COLUMNS order)
NAMESPACE, ID, VERSION, TEXT, METADATA = 0, 1, 2, 5, 11

# a record dict's keys in the order the API answers them (and a JSONL target writes them)
RECORD_KEYS = (
    "id",
    "namespace",
    "class",
    "kind",
    "text",
    "content",
    "tags",
    "source",
    "observed_at",
    "expires_at",
    "metadata",
    "version",
)

Row = tuple[Any, ...]


def json_text(value: Any) -> str:
    """JSON text for a column (orjson: about 5x faster than json on the request path)."""
    return orjson.dumps(value).decode()


def tier_columns(metadata: dict[str, Any]) -> tuple[Any, float, Any]:
    """The tier, heat and last access columns, from `metadata.mem_os` (empty for a legacy record)."""
    mo = metadata.get("mem_os")
    if not isinstance(mo, dict):
        return None, 0.0, None
    return mo.get("tier"), float(mo.get("heat", 0.0) or 0.0), mo.get("last_accessed_at")


def upsert_sql(strictly_newer: bool = False) -> str:
    """Insert or replace a record row, keeping the stored one when it is newer (the version rule).
    strictly_newer: an equal version also keeps the stored row (migration: live data wins)."""
    cmp = ">" if strictly_newer else ">="
    updates = ", ".join(f"{c}=excluded.{c}" for c in COLUMN_NAMES if c not in ("namespace", "id"))
    return (
        f"INSERT INTO records({COLUMNS}) VALUES ({','.join('?' * N_COLUMNS)}) ON CONFLICT(namespace, id) "
        f"DO UPDATE SET {updates} WHERE excluded.version {cmp} records.version"
    )


def upsert_from_sql(table: str, strictly_newer: bool = False) -> str:
    """`upsert_sql` of the rows of a table with the same columns (WHERE true: SQLite's rule for
    INSERT ... SELECT ... ON CONFLICT)."""
    values = f"VALUES ({','.join('?' * N_COLUMNS)})"
    return upsert_sql(strictly_newer).replace(values, f"SELECT {COLUMNS} FROM {table} WHERE true")


# -- encoding ----------------------------------------------------------------------------------------
def encode_values(
    namespace: str,
    id: str,
    version: int,
    class_: str,
    kind: str | None,
    text: str,
    content: Any,
    tags: list[str],
    source: str | None,
    observed_at: int,
    expires_at: int | None,
    metadata: dict[str, Any],
) -> Row:
    """The row of a record's values (already checked: see `records.record_problem`)."""
    return (
        namespace,
        id,
        version,
        class_,
        kind,
        text,
        json_text(content),
        json_text(tags),
        source,
        observed_at,
        expires_at,
        json_text(metadata),
        *tier_columns(metadata),
    )


def encode(rec: Record) -> Row:
    """The row of a record."""
    return encode_values(
        rec.namespace,
        rec.id,
        rec.version,
        rec.class_,
        rec.kind,
        rec.text,
        rec.content,
        rec.tags,
        rec.source,
        rec.observed_at,
        rec.expires_at,
        rec.metadata,
    )


def with_metadata(row: Row, metadata: dict[str, Any]) -> Row:
    """The row with other metadata (and so other tier columns)."""
    return (*row[:METADATA], json_text(metadata), *tier_columns(metadata))


# -- decoding ----------------------------------------------------------------------------------------
def decode(row: Sequence[Any]) -> Record:
    """A record from a row a store wrote (a sqlite3.Row or a plain tuple, COLUMNS order)."""
    return stored_record(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        orjson.loads(row[6]) if row[6] is not None else None,
        orjson.loads(row[7]),
        row[8],
        row[9],
        row[10],
        orjson.loads(row[11]),
    )


def _foreign_content(text: str | None) -> Any:
    return json.loads(text) if text else None


def legacy_of_row(row: Sequence[Any], foreign: bool = False) -> dict[str, Any]:
    """The legacy record dict of a row (COLUMNS order): what `migration.build.Builder.row` takes.

    foreign: a row of a store file cutover may not have written (a migration's legacy source), read
    leniently so that the record check, not the parser, judges it: json's parser (NaN, Infinity and
    integers of any size come through, to be quarantined with their reason), and an empty content
    column read as null."""
    loads: Callable[[Any], Any] = json.loads if foreign else orjson.loads
    content = _foreign_content(row[6]) if foreign else (orjson.loads(row[6]) if row[6] is not None else None)
    return {
        "namespace": row[0],
        "id": row[1],
        "version": row[2],
        "class": row[3],
        "kind": row[4],
        "text": row[5],
        "content": content,
        "tags": loads(row[7]),
        "source": row[8],
        "observed_at": row[9],
        "expires_at": row[10],
        "metadata": loads(row[11]),
    }


def record_of_row(row: Sequence[Any], foreign: bool = False) -> dict[str, Any]:
    """A row as a record dict, keys in the API's order (a JSONL target's line, a migration source's
    item); foreign as in `legacy_of_row`."""
    d = legacy_of_row(row, foreign)
    return {k: d[k] for k in RECORD_KEYS}
