"""What each side of a reconciliation holds: its rows (id, version, text, tier), read from a store or
an export by the migration's rules, and their digests."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from cutover.migration.build import TIERS
from cutover.migration.options import MigrationError, parse_uri
from cutover.migration.tiering import Policy
from cutover.store.legacy import LegacyStore
from cutover.store.records import record_problem

MASK = (1 << 64) - 1
VALID_TIERS = "(" + ", ".join(f"'{t}'" for t in TIERS) + ")"  # SQL: a tier column that is a tier
SAMPLE = 50  # ids listed per kind of difference and namespace


@dataclass
class Row:
    namespace: str
    id: str
    version: int
    text: str
    tier: str | None  # None: a legacy record, classified when it is compared (see `Tiers`)
    observed_at: int
    as_of: int | None = None  # the as-of in the record's provenance (metadata.migration.as_of)
    legacy: dict[str, Any] | None = None  # what the policy reads, for a record without a tier


class Tiers:
    """Tiers of legacy records at an as-of: the one a record's counterpart recorded in its
    provenance, else the default (`--as-of`, or the as-of the target's migration recorded)."""

    def __init__(self, policy: Policy, as_of: int):
        self.policy, self.as_of = policy, as_of
        self._compiled: dict[int, Any] = {as_of: policy.compile(as_of)}

    def classify(self, rec: dict[str, Any], as_of: int | None = None) -> str:
        at = self.as_of if as_of is None else as_of
        fn = self._compiled.get(at)
        if fn is None:
            fn = self._compiled[at] = self.policy.compile(at)
        return fn(rec)[0]

    def resolve(self, r: Row, other: Row | None = None) -> None:
        if r.tier is None:
            assert r.legacy is not None  # a row without a tier keeps what the policy reads
            r.tier = self.classify(r.legacy, other.as_of if other is not None else None)


def digest_of(id_: str, version: int, text: str, tier: str | None = None) -> int:
    """64-bit BLAKE2 of (id, version, text[, tier]): the unit of every checksum here."""
    key = f"{id_}\x1f{version}\x1f{text}" if tier is None else f"{id_}\x1f{version}\x1f{text}\x1f{tier}"
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big")


def row_digest(r: Row) -> int:
    return digest_of(r.id, r.version, r.text, r.tier)


def open_sqlite(
    path: Path, namespaces: AbstractSet[str] | None, window: tuple[int, int] | None
) -> tuple[sqlite3.Connection, list[str], list[Any]]:
    """The store's connection and the WHERE terms (with their arguments) of a namespace and time filter."""
    if not path.is_file():
        raise MigrationError("no such store", file=str(path), fix="check the sqlite: path")
    where: list[str] = []
    args: list[Any] = []
    if namespaces:
        where.append(f"namespace IN ({','.join('?' * len(namespaces))})")
        args += sorted(namespaces)
    if window:
        where.append("observed_at BETWEEN ? AND ?")
        args += list(window)
    return LegacyStore(path)._conn(), where, args


def provenance_as_of(meta: object) -> int | None:
    mig = meta.get("migration") if isinstance(meta, dict) else None
    at = mig.get("as_of") if isinstance(mig, dict) else None
    return at if isinstance(at, int) and not isinstance(at, bool) else None


def _rows_sqlite(path: Path, namespaces: AbstractSet[str] | None, window: tuple[int, int] | None) -> Iterator[Row]:
    conn, where, args = open_sqlite(path, namespaces, window)
    sql = (
        f"SELECT namespace, id, version, text, tier, class, tags, observed_at, expires_at, metadata FROM records "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY namespace, id"
    )
    for ns, id_, ver, text, tier, cls, tags, obs, exp, meta in conn.execute(sql, args):
        metadata = orjson.loads(meta)
        legacy = None
        if tier not in TIERS:  # a legacy record (or one with a tier that is none): classified
            tier = None
            legacy = {"class": cls, "tags": orjson.loads(tags), "observed_at": obs, "expires_at": exp}
            legacy |= {"metadata": metadata, "text": text}
        yield Row(ns, id_, ver, text, tier, obs, provenance_as_of(metadata), legacy)


def lines_in(f: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    """The lines that start at a byte offset in [start, end)."""
    if start > 0:
        f.seek(start - 1)
        f.readline()  # finish the line that started before `start` (or the newline just before it)
    pos = f.tell()
    while pos < end:
        line = f.readline()
        if not line:
            return
        pos += len(line)
        yield line


def valid_jsonl(
    path: Path,
    tiers: Tiers,
    namespaces: AbstractSet[str] | None,
    window: tuple[int, int] | None,
    span: tuple[int, int] | None = None,
    counts: dict[str, int] | None = None,
    defer: bool = False,
) -> Iterator[Row]:
    """The export's records as migrate reads them, in file order: a line migrate quarantines (the
    same checks: `records.record_problem`) is counted in counts["quarantined"] and left out. With `span`,
    only the lines that start in that byte range; with `defer`, records without a valid tier keep
    what the policy reads (Row.legacy) and are classified when compared."""
    if not path.is_file():
        raise MigrationError("no such file", file=str(path), fix="check the jsonl: path")
    with open(path, "rb") as f:
        lines: Iterable[bytes] = f
        if span is not None:
            lines = lines_in(f, *span)
        bad = 0
        for line in lines:
            text = line.strip()
            if not text:
                continue  # migrate skips blank lines too
            try:
                d = orjson.loads(text)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if record_problem(d) is not None:
                bad += 1
                continue
            if namespaces and d["namespace"] not in namespaces:
                continue
            obs = d.get("observed_at")
            if obs is None:
                obs = tiers.as_of  # what migrate stores for a record without one
            if window and not (window[0] <= obs <= window[1]):
                continue
            meta = d.get("metadata") or {}
            mo = meta.get("mem_os")
            tier = mo.get("tier") if isinstance(mo, dict) else None
            legacy = None
            if tier not in TIERS:
                tier = None
                if defer:
                    legacy = d
                else:
                    tier = tiers.classify(d)
            yield Row(
                d["namespace"],
                d["id"],
                d.get("version") or 1,
                d.get("text", ""),
                tier,
                obs,
                provenance_as_of(meta),
                legacy,
            )
        if counts is not None:
            counts["quarantined"] = counts.get("quarantined", 0) + bad


def _rows_jsonl(
    path: Path,
    tiers: Tiers,
    namespaces: AbstractSet[str] | None,
    window: tuple[int, int] | None,
    counts: dict[str, int] | None = None,
) -> Iterator[Row]:
    """Sorted by (namespace, id) in memory (the detail pass asks only for the namespaces that
    differ), one per id as migrate keeps it: the highest version, the first of equal ones (a stable
    sort keeps file order within an id); the others are counted in counts["superseded"]."""
    ordered = sorted(valid_jsonl(path, tiers, namespaces, window, defer=True), key=lambda r: (r.namespace, r.id))
    best: Row | None = None
    superseded = 0
    for r in ordered:
        if best is not None and (best.namespace, best.id) == (r.namespace, r.id):
            superseded += 1
            if r.version > best.version:
                best = r
            continue
        if best is not None:
            yield best
        best = r
    if best is not None:
        yield best
    if counts is not None:
        counts["superseded"] = counts.get("superseded", 0) + superseded


def rows(
    uri: str,
    tiers: Tiers,
    namespaces: AbstractSet[str] | None = None,
    window: tuple[int, int] | None = None,
    counts: dict[str, int] | None = None,
) -> Iterator[Row]:
    """A side's records in (namespace, id) order, tiers as stored (None: classified when compared)."""
    kind, path = parse_uri(uri)
    if kind == "sqlite":
        return _rows_sqlite(path, namespaces, window)
    return _rows_jsonl(path, tiers, namespaces, window, counts)
