"""Reconciliation: does the target hold what the source (the source of truth) holds?

Per namespace and tier: counts and an order-independent checksum over (id, version, text, tier)
(a sum of 64-bit BLAKE2 hashes), the ids missing on either side, and the mismatched records. The
tier of a record without `metadata.mem_os.tier` (a legacy record) is the one the classification
policy gives it. `repair()` copies what is missing or stale from the source to the target, then
checks again.

Two passes. The summary pass reads each side once, in no particular order, in its own process (the
two run in parallel), into per-namespace counts and checksums. Only namespaces whose summaries
differ get the detail pass: both sides read in (namespace, id) order and merge-joined to name the
missing and mismatched ids. At parity (the usual case) the detail pass reads nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

import orjson

from cutover.migration.build import TIERS, Builder
from cutover.migration.checks import problem
from cutover.migration.options import MigrationError, parse_uri
from cutover.migration.targets import checkpoint_as_of
from cutover.migration.tiering import Policy
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MEMORYOS_APP_ID, MemoryOSStore
from cutover.store.records import now_ms
from cutover.store.rows import legacy_of_row

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
    legacy: dict | None = None  # what the policy reads, for a record without a tier


class Tiers:
    """Tiers of legacy records at an as-of: the one a record's counterpart recorded in its
    provenance, else the default (`--as-of`, or the as-of the target's migration recorded)."""

    def __init__(self, policy: Policy, as_of: int):
        self.policy, self.as_of = policy, as_of
        self._compiled: dict[int, Any] = {as_of: policy.compile(as_of)}

    def classify(self, rec: dict, as_of: int | None = None) -> str:
        at = self.as_of if as_of is None else as_of
        fn = self._compiled.get(at)
        if fn is None:
            fn = self._compiled[at] = self.policy.compile(at)
        return fn(rec)[0]

    def resolve(self, r: Row, other: Row | None = None) -> None:
        if r.tier is None:
            assert r.legacy is not None  # a row without a tier keeps what the policy reads
            r.tier = self.classify(r.legacy, other.as_of if other is not None else None)


def _digest_of(id_: str, version: int, text: str, tier: str | None = None) -> int:
    """64-bit BLAKE2 of (id, version, text[, tier]): the unit of every checksum here."""
    key = f"{id_}\x1f{version}\x1f{text}" if tier is None else f"{id_}\x1f{version}\x1f{text}\x1f{tier}"
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big")


def _digest(r: Row) -> int:
    return _digest_of(r.id, r.version, r.text, r.tier)


def _open_sqlite(path: Path, namespaces, window) -> tuple[sqlite3.Connection, list[str], list]:
    """The store's connection and the WHERE terms (with their arguments) of a namespace and time filter."""
    if not path.is_file():
        raise MigrationError("no such store", file=str(path), fix="check the sqlite: path")
    where, args = [], []
    if namespaces:
        where.append(f"namespace IN ({','.join('?' * len(namespaces))})")
        args += sorted(namespaces)
    if window:
        where.append("observed_at BETWEEN ? AND ?")
        args += list(window)
    return LegacyStore(path)._conn(), where, args


def _provenance_as_of(meta: object) -> int | None:
    mig = meta.get("migration") if isinstance(meta, dict) else None
    at = mig.get("as_of") if isinstance(mig, dict) else None
    return at if isinstance(at, int) and not isinstance(at, bool) else None


def _rows_sqlite(path: Path, namespaces: set[str] | None, window: tuple[int, int] | None) -> Iterator[Row]:
    conn, where, args = _open_sqlite(path, namespaces, window)
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
        yield Row(ns, id_, ver, text, tier, obs, _provenance_as_of(metadata), legacy)


def _valid_jsonl(
    path: Path,
    tiers: Tiers,
    namespaces,
    window,
    span: tuple[int, int] | None = None,
    counts: dict | None = None,
    defer: bool = False,
) -> Iterator[Row]:
    """The export's records as migrate reads them, in file order: a line migrate quarantines (the
    same checks: `checks.problem`) is counted in counts["quarantined"] and left out. With `span`,
    only the lines that start in that byte range; with `defer`, records without a valid tier keep
    what the policy reads (Row.legacy) and are classified when compared."""
    if not path.is_file():
        raise MigrationError("no such file", file=str(path), fix="check the jsonl: path")
    with open(path, "rb") as f:
        lines: Iterable[bytes] = f
        if span is not None:
            lines = _lines_in(f, *span)
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
            if problem(d) is not None:
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
                _provenance_as_of(meta),
                legacy,
            )
        if counts is not None:
            counts["quarantined"] = counts.get("quarantined", 0) + bad


def _rows_jsonl(path: Path, tiers: Tiers, namespaces, window, counts: dict | None = None) -> Iterator[Row]:
    """Sorted by (namespace, id) in memory (the detail pass asks only for the namespaces that
    differ), one per id as migrate keeps it: the highest version, the first of equal ones (a stable
    sort keeps file order within an id); the others are counted in counts["superseded"]."""
    ordered = sorted(_valid_jsonl(path, tiers, namespaces, window, defer=True), key=lambda r: (r.namespace, r.id))
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


def rows(uri: str, tiers: Tiers, namespaces=None, window=None, counts: dict | None = None) -> Iterator[Row]:
    """A side's records in (namespace, id) order, tiers as stored (None: classified when compared)."""
    kind, path = parse_uri(uri)
    if kind == "sqlite":
        return _rows_sqlite(path, namespaces, window)
    return _rows_jsonl(path, tiers, namespaces, window, counts)


@dataclass
class NamespaceResult:
    source: dict = field(default_factory=dict)  # tier -> [count, checksum]
    target: dict = field(default_factory=dict)
    missing_in_target: list = field(default_factory=list)
    missing_in_source: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)
    counts: dict = field(default_factory=lambda: {"missing_in_target": 0, "missing_in_source": 0, "mismatched": 0})

    @property
    def parity(self) -> bool:
        return not any(self.counts.values())


def _add(side: dict, r: Row) -> None:
    c = side.setdefault(r.tier, [0, 0])
    c[0] += 1
    c[1] = (c[1] + _digest(r)) & MASK


def _note(res: NamespaceResult, kind: str, item) -> None:
    res.counts[kind] += 1
    if len(getattr(res, kind)) < SAMPLE:
        getattr(res, kind).append(item)


# -- summary pass ------------------------------------------------------------------------------------
def _raw_sqlite(path: Path, classify, namespaces, window) -> Iterator[tuple]:
    """(namespace, id, version, text, tier) in storage order; tiers classified where missing."""
    conn, where, args = _open_sqlite(path, namespaces, window)
    conn.row_factory = None
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    yield from conn.execute(
        f"SELECT namespace, id, version, text, tier FROM records {cond} "
        f"{'AND' if cond else 'WHERE'} tier IN {VALID_TIERS}",
        args,
    )
    for ns, id_, ver, text, cls, tags, obs, exp, meta in conn.execute(
        f"SELECT namespace, id, version, text, class, tags, observed_at, expires_at, metadata FROM records {cond} "
        f"{'AND' if cond else 'WHERE'} (tier IS NULL OR tier NOT IN {VALID_TIERS})",
        args,
    ):
        tier = classify(
            {
                "class": cls,
                "tags": json.loads(tags),
                "observed_at": obs,
                "expires_at": exp,
                "metadata": json.loads(meta),
                "text": text,
            }
        )[0]
        yield ns, id_, ver, text, tier


def _lines_in(f, start: int, end: int) -> Iterator[bytes]:
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


def _raw_jsonl(path: Path, tiers: Tiers, namespaces, window, span=None, counts=None) -> Iterator[tuple]:
    """(namespace, id, version, text, tier) of the export's records as `_valid_jsonl` reads them
    (the summary pass's loop: no Row built per record)."""
    if window or not path.is_file():
        for r in _valid_jsonl(path, tiers, namespaces, window, span, counts):
            yield r.namespace, r.id, r.version, r.text, r.tier
        return
    classify, loads, bad_json = tiers.policy.compile(tiers.as_of), orjson.loads, orjson.JSONDecodeError
    bad = 0
    with open(path, "rb") as f:
        lines: Iterable[bytes] = f if span is None else _lines_in(f, *span)
        for line in lines:
            try:
                d = loads(line)
            except bad_json:
                bad += bool(line.strip())  # migrate skips blank lines, quarantines the others
                continue
            if problem(d) is not None:
                bad += 1
                continue
            ns = d["namespace"]
            if namespaces and ns not in namespaces:
                continue
            meta = d.get("metadata")
            mo = meta.get("mem_os") if meta else None
            tier = mo.get("tier") if type(mo) is dict else None
            if tier not in TIERS:
                tier = classify(d)[0]
            yield ns, d["id"], d.get("version") or 1, d.get("text", ""), tier
    if counts is not None:
        counts["quarantined"] = counts.get("quarantined", 0) + bad


def _merge(into: dict, part: dict) -> dict:
    """Add one summary into another: counts add, checksums add modulo 2^64 (order-independent)."""
    for ns, per in part.items():
        mine = into.setdefault(ns, {})
        for key, (n, c) in per.items():
            m = mine.setdefault(key, [0, 0])
            m[0] += n
            m[1] = (m[1] + c) & MASK
    return into


def summarize(
    uri: str,
    policy: Policy,
    namespaces: list[str] | None,
    window,
    with_tier: bool,
    now: int,
    span: tuple[int, int] | None = None,
    counts: dict | None = None,
) -> dict:
    """Per namespace: {tier: [count, checksum]} and, under "*", [count, checksum] over all its records
    (without the tier when with_tier is False); records without a tier classified at the as-of
    `now`. `span`: a byte range of a jsonl: file; `counts` gets the lines left out as migrate
    quarantines them ("quarantined")."""
    kind, path = parse_uri(uri)
    tiers = Tiers(policy, now)
    classify = policy.compile(now)
    wanted = set(namespaces) if namespaces else None
    out: dict[str, dict] = {}
    get = out.get
    rows_ = (
        _raw_sqlite(path, classify, wanted, window)
        if kind == "sqlite"
        else _raw_jsonl(path, tiers, wanted, window, span, counts)
    )
    for ns, id_, ver, text, tier in rows_:
        d = _digest_of(id_, ver, text, tier)
        per = get(ns)
        if per is None:
            per = out[ns] = {"*": [0, 0]}
        t = per.get(tier)
        if t is None:
            t = per[tier] = [0, 0]
        t[0] += 1
        t[1] = (t[1] + d) & MASK
        if not with_tier:
            d = _digest_of(id_, ver, text)
        a = per["*"]
        a[0] += 1
        a[1] = (a[1] + d) & MASK
    return out


def _summary_job(uri, policy, namespaces, window, with_tier, as_of, span) -> tuple[dict, int]:
    counts: dict = {}
    return summarize(uri, policy, namespaces, window, with_tier, as_of, span, counts), counts.get("quarantined", 0)


def _summaries(
    source: str, target: str, policy: Policy, namespaces, window, with_tier: bool, as_of: int
) -> tuple[dict, dict, dict]:
    """Both sides at once in worker processes. A jsonl: side (parsing and classifying in Python is the
    slow part) is split into byte ranges summarized in parallel and added up. Also returns the lines
    of each side left out as migrate quarantines them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(side, span) for side, uri in (("source", source), ("target", target)) for span in _spans(uri)]
    with ProcessPoolExecutor(
        min(len(jobs), max(2, os.cpu_count() or 1) + 1), mp_context=multiprocessing.get_context("forkserver")
    ) as pool:
        futures = [
            (
                side,
                pool.submit(
                    _summary_job,
                    source if side == "source" else target,
                    policy,
                    namespaces,
                    window,
                    with_tier,
                    as_of,
                    span,
                ),
            )
            for side, span in jobs
        ]
        out: dict[str, dict] = {"source": {}, "target": {}}
        quarantined = {"source": 0, "target": 0}
        for side, fut in futures:
            summary, bad = fut.result()
            _merge(out[side], summary)
            quarantined[side] += bad
    return out["source"], out["target"], quarantined


def default_as_of(source: str, target: str, as_of: int | None = None) -> int:
    """The as-of records without one in their counterpart's provenance are classified at: `as_of`
    (--as-of), else the one the target's latest migration recorded (the source's, for a reverse
    reconcile), else now."""
    if as_of is not None:
        return as_of
    for uri in (target, source):
        recorded = checkpoint_as_of(uri)
        if recorded is not None:
            return recorded
    return now_ms()


def _spans(uri: str, parts: int = 2) -> list:
    """Byte ranges of a jsonl: file to summarize in parallel ([None]: the whole side at once)."""
    kind, path = parse_uri(uri)
    if kind != "jsonl" or not path.is_file():
        return [None]
    size = path.stat().st_size
    if size < (8 << 20):
        return [None]
    cuts = [size * i // parts for i in range(parts + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(parts)]


def compare(
    source: str,
    target: str,
    policy: Policy,
    namespaces: list[str] | None = None,
    window: tuple[int, int] | None = None,
    compare_tier: bool = True,
    as_of: int | None = None,
) -> dict:
    """Source against target. Records without a tier are classified as migrate classified them: at
    the as-of their counterpart recorded in its provenance, else at `default_as_of`."""
    at = default_as_of(source, target, as_of)
    sa, sb, quarantined = _summaries(source, target, policy, namespaces, window, compare_tier, at)
    same = {ns for ns in set(sa) & set(sb) if sa[ns]["*"] == sb[ns]["*"]}
    differ = sorted((set(sa) | set(sb)) - same)
    # many differing namespaces: one full detail pass rather than a huge IN (...) list
    detail_ns = differ if len(differ) <= 500 else None
    report = (
        _detail(source, target, policy, detail_ns, window, compare_tier, at)
        if differ
        else _empty(source, target, window, compare_tier)
    )
    for ns in same:  # summaries agree: parity, and the tier table straight from them
        tiers = {t: v for t, v in sa[ns].items() if t != "*"}
        target_tiers = {t: v for t, v in sb[ns].items() if t != "*"} if compare_tier else tiers
        report["per_namespace"][ns] = {
            "parity": True,
            "missing_in_target": 0,
            "missing_in_source": 0,
            "mismatched": 0,
            "tiers": {
                t: {
                    "source_count": tiers.get(t, [0, 0])[0],
                    "target_count": target_tiers.get(t, [0, 0])[0],
                    "source_checksum": f"{tiers.get(t, [0, 0])[1]:016x}",
                    "target_checksum": f"{target_tiers.get(t, [0, 0])[1]:016x}",
                }
                for t in sorted(set(tiers) | set(target_tiers))
            },
            "sample": {"missing_in_target": [], "missing_in_source": [], "mismatched": []},
        }
    report["per_namespace"] = dict(sorted(report["per_namespace"].items()))
    report["namespaces"] = len(report["per_namespace"])
    report["parity"] = all(v["parity"] for v in report["per_namespace"].values())
    report["detail_namespaces"] = len(differ)
    report["records_scanned"] = sum(v["*"][0] for side in (sa, sb) for v in side.values())
    report["as_of"] = at
    report["quarantined"] = quarantined
    report.setdefault("superseded", {"source": 0, "target": 0})
    return report


def _empty(source, target, window, compare_tier) -> dict:
    return {
        "source": source,
        "target": target,
        "window": window,
        "compare_tier": compare_tier,
        "records_scanned": 0,
        "namespaces": 0,
        "parity": True,
        "totals": {"missing_in_target": 0, "missing_in_source": 0, "mismatched": 0},
        "per_namespace": {},
    }


# -- detail pass -------------------------------------------------------------------------------------
def _detail(
    source: str,
    target: str,
    policy: Policy,
    namespaces: list[str] | None = None,
    window: tuple[int, int] | None = None,
    compare_tier: bool = True,
    as_of: int | None = None,
) -> dict:
    """Merge-join both sides in (namespace, id) order: every missing and mismatched id."""
    tiers = Tiers(policy, default_as_of(source, target, as_of))
    wanted = set(namespaces) if namespaces else None
    counts_a: dict = {}
    counts_b: dict = {}
    a, b = rows(source, tiers, wanted, window, counts_a), rows(target, tiers, wanted, window, counts_b)
    results: dict[str, NamespaceResult] = {}
    ra, rb = next(a, None), next(b, None)
    scanned = 0
    while ra is not None or rb is not None:
        ka = (ra.namespace, ra.id) if ra else None
        kb = (rb.namespace, rb.id) if rb else None
        if kb is None or (ka is not None and ka < kb):
            assert ra is not None  # only the source has a row left, or the smaller key
            res = results.setdefault(ra.namespace, NamespaceResult())
            tiers.resolve(ra)
            _add(res.source, ra)
            _note(res, "missing_in_target", ra.id)
            ra, scanned = next(a, None), scanned + 1
        elif ka is None or kb < ka:
            assert rb is not None  # only the target has a row left, or the smaller key
            res = results.setdefault(rb.namespace, NamespaceResult())
            tiers.resolve(rb)
            _add(res.target, rb)
            _note(res, "missing_in_source", rb.id)
            rb, scanned = next(b, None), scanned + 1
        else:
            assert ra is not None and rb is not None  # the same key on both sides
            res = results.setdefault(ra.namespace, NamespaceResult())
            tiers.resolve(ra, rb)
            tiers.resolve(rb, ra)
            if not compare_tier:
                rb.tier = ra.tier
            _add(res.source, ra)
            _add(res.target, rb)
            if (ra.version, ra.text, ra.tier) != (rb.version, rb.text, rb.tier):
                _note(
                    res,
                    "mismatched",
                    {
                        "id": ra.id,
                        "source": {"version": ra.version, "tier": ra.tier},
                        "target": {"version": rb.version, "tier": rb.tier},
                        "text_differs": ra.text != rb.text,
                    },
                )
            ra, rb, scanned = next(a, None), next(b, None), scanned + 2
    per_ns = {
        ns: {
            "parity": r.parity,
            **r.counts,
            "tiers": {
                t: {
                    "source_count": r.source.get(t, [0, 0])[0],
                    "target_count": r.target.get(t, [0, 0])[0],
                    "source_checksum": f"{r.source.get(t, [0, 0])[1]:016x}",
                    "target_checksum": f"{r.target.get(t, [0, 0])[1]:016x}",
                }
                for t in sorted(set(r.source) | set(r.target))
            },
            "sample": {
                "missing_in_target": r.missing_in_target,
                "missing_in_source": r.missing_in_source,
                "mismatched": r.mismatched,
            },
        }
        for ns, r in sorted(results.items())
    }
    totals = {k: sum(v[k] for v in per_ns.values()) for k in ("missing_in_target", "missing_in_source", "mismatched")}
    return {
        "source": source,
        "target": target,
        "window": window,
        "compare_tier": compare_tier,
        "records_scanned": scanned,
        "namespaces": len(per_ns),
        "parity": all(v["parity"] for v in per_ns.values()),
        "totals": totals,
        "per_namespace": per_ns,
        "superseded": {"source": counts_a.get("superseded", 0), "target": counts_b.get("superseded", 0)},
    }


def repair(
    source: str,
    target: str,
    policy: Policy,
    namespaces: list[str] | None = None,
    window: tuple[int, int] | None = None,
    delete_extra: bool = False,
    batch: int = 2000,
    compare_tier: bool = True,
    as_of: int | None = None,
) -> dict:
    """Copy what is missing or stale in the target from the source (the source of truth). Into a
    MemoryOS store each record is built as migrate builds it (`build.Builder`, at `default_as_of`),
    so a plain reconcile after it has parity; into a legacy store (after a rollback) rows go as they
    are. A record whose tier differs from the policy's is stale too (unless compare_tier is False).
    Dead-lettered mirror copies of keys now equal on both sides are cleared."""
    skind, spath = parse_uri(source)
    tkind, tpath = parse_uri(target)
    if skind != "sqlite" or tkind != "sqlite":
        raise MigrationError("repair works between stores", fix="use sqlite: URIs for --source and --target")
    if not spath.is_file():
        raise MigrationError("no such store", file=str(spath), fix="check the sqlite: path")
    kind = target_kind(spath, tpath)
    src, dst = LegacyStore(spath), (MemoryOSStore if kind == "memoryos" else LegacyStore)(tpath)
    at = default_as_of(source, target, as_of)
    tiers = Tiers(policy, at)
    builder = Builder(policy, at) if kind == "memoryos" else None
    wanted = set(namespaces) if namespaces else None
    target_rows = {(r.namespace, r.id): r for r in rows(target, tiers, wanted, window)}
    copied = stale = deleted = 0
    keys: list[tuple[str, str]] = []

    def copy() -> None:
        got = src.get_rows(keys)
        out = [got[k] for k in keys if k in got]
        if builder is not None:
            out = [builder.row(legacy_of_row(row))[0] for row in out]
        if out:
            dst.put_rows(out)
        keys.clear()

    seen = set()
    for r in rows(source, tiers, wanted, window):
        key = (r.namespace, r.id)
        seen.add(key)
        t = target_rows.get(key)
        if t is not None:
            if t.version > r.version:
                continue  # the target is newer: not the source's to overwrite; reported by compare()
            tiers.resolve(r, t)
            tiers.resolve(t, r)
            if (t.version, t.text) == (r.version, r.text) and (not compare_tier or t.tier == r.tier):
                continue
        keys.append(key)
        copied += t is None
        stale += t is not None
        if len(keys) >= batch:
            copy()
    if keys:
        copy()
    if delete_extra:
        for key in set(target_rows) - seen:
            deleted += dst.delete(*key)
    cleared = clear_dead_letters(src, dst)
    after = compare(source, target, policy, namespaces, window, compare_tier=compare_tier, as_of=as_of)
    return {
        "copied_missing": copied,
        "replaced_stale": stale,
        "deleted_extra": deleted,
        "dead_letters_cleared": cleared,
        "as_of": at,
        "target_kind": kind,
        "after": after,
    }


def target_kind(source: Path, target: Path) -> str:
    """What the target of a repair is: memoryos or legacy. A store says so itself (MemoryOS stores
    carry their marker, `memoryos.MEMORYOS_APP_ID`); an absent or empty target is the other kind
    than the source (legacy -> MemoryOS, or back after a rollback)."""
    kind = store_kind(target)
    if kind is not None:
        return kind
    return "legacy" if store_kind(source) == "memoryos" else "memoryos"


def store_kind(path: Path) -> str | None:
    """memoryos (marked as such), legacy (records, no marker), or None (no store, or an empty one)."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] == MEMORYOS_APP_ID:
            return "memoryos"
        try:
            any_record = conn.execute("SELECT 1 FROM records LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # not a store (yet)
            return None
    finally:
        conn.close()
    return "legacy" if any_record else None


def clear_dead_letters(*stores: LegacyStore | MemoryOSStore) -> int:
    """Delete the dead-lettered mirror copies (in these stores' files: the gateway's in-store
    outboxes) of keys the two stores now hold alike (same version and text, or both without the
    record): what the copy was to do is done. Returns how many went."""
    a, b = stores[0], stores[-1]
    cleared = 0
    for store in stores:
        c = store._conn()
        dead = c.execute("SELECT seq, namespace, id FROM dead_letter").fetchall()
        if not dead:
            continue
        keys = [(ns, i) for _, ns, i in dead]
        ra, rb = a.get_rows(keys), b.get_rows(keys)

        def alike(x, y) -> bool:  # rows in COLUMNS order: version [2], text [5]
            return (x is None and y is None) or (x is not None and y is not None and (x[2], x[5]) == (y[2], y[5]))

        done = [seq for seq, ns, i in dead if alike(ra.get((ns, i)), rb.get((ns, i)))]
        if done:
            with store._write:
                c.execute("BEGIN IMMEDIATE")
                c.executemany("DELETE FROM dead_letter WHERE seq = ?", [(s,) for s in done])
                c.execute("COMMIT")
            cleared += len(done)
    return cleared


def markdown(report: dict, repaired: dict | None = None) -> str:
    lines = [
        f"# Reconciliation: {report['source']} -> {report['target']}",
        "",
        f"**Parity: {'yes' if report['parity'] else 'NO'}** · {report['records_scanned']} records scanned · "
        f"{report['namespaces']} namespaces · missing in target {report['totals']['missing_in_target']} · "
        f"missing in source {report['totals']['missing_in_source']} · mismatched {report['totals']['mismatched']}",
        "",
    ]
    if report["window"]:
        lines += [f"Window (observed_at, ms): {report['window'][0]} .. {report['window'][1]}", ""]
    if repaired:
        lines += [
            f"Repair: {repaired['copied_missing']} copied, {repaired['replaced_stale']} stale replaced, "
            f"{repaired['deleted_extra']} extra deleted.",
            "",
        ]
    lines += [
        "| namespace | tier | source count | target count | source checksum | target checksum | parity |",
        "|---|---|---|---|---|---|---|",
    ]
    for ns, v in report["per_namespace"].items():
        for tier, t in v["tiers"].items():
            ok = t["source_count"] == t["target_count"] and t["source_checksum"] == t["target_checksum"]
            lines.append(
                f"| {ns} | {tier} | {t['source_count']} | {t['target_count']} | `{t['source_checksum']}` | "
                f"`{t['target_checksum']}` | {'yes' if ok else 'NO'} |"
            )
    bad = {ns: v for ns, v in report["per_namespace"].items() if not v["parity"]}
    if bad:
        lines += ["", "## Differences (first ids of each kind)", ""]
        for ns, v in bad.items():
            sample = v["sample"]
            lines.append(
                f"- `{ns}`: missing in target {sample['missing_in_target'][:10]}, missing in source "
                f"{sample['missing_in_source'][:10]}, mismatched {[m['id'] for m in sample['mismatched'][:10]]}"
            )
    return "\n".join(lines) + "\n"


def write_reports(report: dict, out_dir: Path, repaired: dict | None = None) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    j, m = out_dir / "reconcile.json", out_dir / "reconcile.md"
    j.write_text(
        json.dumps({"report": report, "repair": {k: v for k, v in (repaired or {}).items() if k != "after"}}, indent=2)
        + "\n"
    )
    m.write_text(markdown(report, repaired))
    return j, m
