"""A migration's sources: a JSONL export read in chunks of whole lines from a byte offset, or a legacy
store read in key order; each item carries the position a resume starts after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from cutover.migration.options import MigrationError
from cutover.store.legacy import LegacyStore
from cutover.store.rows import COLUMNS, record_of_row


@dataclass
class Item:
    position: str  # where to resume after this item
    where: str  # line N or id, for quarantine
    obj: object | None
    error: str | None = None


def jsonl_lines(data: bytes, offset: int, line_no: int | None) -> Iterator[Item]:
    """The records of a run of whole lines that starts at byte `offset` (line `line_no` + 1, if known)."""
    for raw in data.splitlines(keepends=True):
        offset += len(raw)
        if line_no is not None:
            line_no += 1
        where = f"line {line_no}" if line_no is not None else f"byte {offset - len(raw)}"
        text = raw.strip()
        if not text:
            continue
        try:
            yield Item(str(offset), where, orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            yield Item(str(offset), where, None, f"malformed JSON: {str(exc).split(':')[0]}")


def jsonl_chunks(path: Path, start: str | None, chunk_bytes: int) -> Iterator[tuple[int, int | None, bytes]]:
    """(offset, lines before it or None, whole lines) of about chunk_bytes each, from byte `start`.
    Byte-offset positions: a resume seeks straight to the next line (line numbers are then unknown)."""
    offset = int(start or 0)
    line_no = 0 if offset == 0 else None
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            data = f.read(chunk_bytes)
            if not data:
                return
            if not data.endswith(b"\n"):
                data += f.readline()
            yield offset, line_no, data
            offset += len(data)
            if line_no is not None:
                line_no += data.count(b"\n")


def jsonl_source(path: Path, start: str | None) -> Iterator[Item]:
    for offset, line_no, data in jsonl_chunks(path, start, 1 << 20):
        yield from jsonl_lines(data, offset, line_no)


def sqlite_source(path: Path, start: str | None, namespaces: set[str] | None) -> Iterator[Item]:
    if not path.is_file():
        raise MigrationError("no such store", file=str(path), fix="check the sqlite: path")
    store = LegacyStore(path)
    last = tuple(json.loads(start)) if start else ("", "")
    conn = store._conn()
    while True:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM records WHERE (namespace > ? OR (namespace = ? AND id > ?)) "
            "ORDER BY namespace, id LIMIT 5000",
            (last[0], last[0], last[1]),
        ).fetchall()
        if not rows:
            return
        for r in rows:
            last = (r["namespace"], r["id"])
            if namespaces is not None and r["namespace"] not in namespaces:
                continue
            yield Item(json.dumps(last), f"id {r['namespace']}/{r['id']}", record_of_row(r, foreign=True))


def average_line_bytes(path: Path, start: str | None) -> int:
    with open(path, "rb") as f:
        f.seek(int(start or 0))
        sample = f.read(256 * 1024)
    return max(1, len(sample) // max(1, sample.count(b"\n")))
