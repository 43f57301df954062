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

import orjson

from cutover.migration.migrate import MigrationError, parse_uri
from cutover.migration.tiering import Policy
from cutover.store.records import Record, now_ms
from cutover.store.stores import LegacyStore, MemoryOSStore

MASK = (1 << 64) - 1
SAMPLE = 50  # ids listed per kind of difference and namespace


@dataclass
class Row:
    namespace: str
    id: str
    version: int
    text: str
    tier: str
    observed_at: int


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


def _rows_sqlite(path: Path, classify, namespaces: set[str] | None, window: tuple[int, int] | None) -> Iterator[Row]:
    conn, where, args = _open_sqlite(path, namespaces, window)
    sql = (
        f"SELECT namespace, id, version, text, tier, class, tags, observed_at, expires_at, metadata FROM records "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY namespace, id"
    )
    for ns, id_, ver, text, tier, cls, tags, obs, exp, meta in conn.execute(sql, args):
        if tier is None:
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
        yield Row(ns, id_, ver, text, tier, obs)


def _valid_jsonl(path: Path, classify, namespaces, window, span: tuple[int, int] | None = None) -> Iterator[Row]:
    """The export's valid records, in file order (migrate quarantines the others); with `span`, only
    the lines that start in that byte range."""
    if not path.is_file():
        raise MigrationError("no such file", file=str(path), fix="check the jsonl: path")
    with open(path, "rb") as f:
        lines: Iterable[bytes] = f
        if span is not None:
            lines = _lines_in(f, *span)
        for line in lines:
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(d, dict) or not isinstance(d.get("namespace"), str) or not isinstance(d.get("id"), str):
                continue
            if namespaces and d["namespace"] not in namespaces:
                continue
            obs = d.get("observed_at", 0)
            if window and not (window[0] <= obs <= window[1]):
                continue
            meta = d.get("metadata")
            mo = meta.get("mem_os") if isinstance(meta, dict) else None
            tier = kept if isinstance(mo, dict) and (kept := mo.get("tier")) else classify(d)[0]
            yield Row(d["namespace"], d["id"], d.get("version") or 1, d.get("text", ""), tier, obs)


def _rows_jsonl(path: Path, classify, namespaces, window) -> Iterator[Row]:
    """Sorted by (namespace, id) in memory: the detail pass asks only for the namespaces that differ."""
    return iter(sorted(_valid_jsonl(path, classify, namespaces, window), key=lambda r: (r.namespace, r.id)))


def rows(uri: str, classify, namespaces=None, window=None) -> Iterator[Row]:
    kind, path = parse_uri(uri)
    return (_rows_sqlite if kind == "sqlite" else _rows_jsonl)(path, classify, namespaces, window)


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
        f"SELECT namespace, id, version, text, tier FROM records {cond} {'AND' if cond else 'WHERE'} tier IS NOT NULL",
        args,
    )
    for ns, id_, ver, text, cls, tags, obs, exp, meta in conn.execute(
        f"SELECT namespace, id, version, text, class, tags, observed_at, expires_at, metadata FROM records {cond} "
        f"{'AND' if cond else 'WHERE'} tier IS NULL",
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


def _raw_jsonl(path: Path, classify, namespaces, window, span=None) -> Iterator[tuple]:
    for r in _valid_jsonl(path, classify, namespaces, window, span):
        yield r.namespace, r.id, r.version, r.text, r.tier


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
) -> dict:
    """Per namespace: {tier: [count, checksum]} and, under "*", [count, checksum] over all its records
    (without the tier when with_tier is False). `span`: a byte range of a jsonl: file."""
    kind, path = parse_uri(uri)
    classify = policy.compile(now)
    wanted = set(namespaces) if namespaces else None
    out: dict[str, dict] = {}
    get = out.get
    rows_ = (
        _raw_sqlite(path, classify, wanted, window)
        if kind == "sqlite"
        else _raw_jsonl(path, classify, wanted, window, span)
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


def _summaries(source: str, target: str, policy: Policy, namespaces, window, with_tier: bool) -> tuple[dict, dict]:
    """Both sides at once in worker processes. A jsonl: side (parsing and classifying in Python is the
    slow part) is split into byte ranges summarized in parallel and added up."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    now = now_ms()
    jobs = [(side, span) for side, uri in (("source", source), ("target", target)) for span in _spans(uri)]
    with ProcessPoolExecutor(
        min(len(jobs), max(2, os.cpu_count() or 1) + 1), mp_context=multiprocessing.get_context("forkserver")
    ) as pool:
        futures = [
            (
                side,
                pool.submit(
                    summarize, source if side == "source" else target, policy, namespaces, window, with_tier, now, span
                ),
            )
            for side, span in jobs
        ]
        out: dict[str, dict] = {"source": {}, "target": {}}
        for side, fut in futures:
            _merge(out[side], fut.result())
    return out["source"], out["target"]


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
) -> dict:
    sa, sb = _summaries(source, target, policy, namespaces, window, compare_tier)
    same = {ns for ns in set(sa) & set(sb) if sa[ns]["*"] == sb[ns]["*"]}
    differ = sorted((set(sa) | set(sb)) - same)
    # many differing namespaces: one full detail pass rather than a huge IN (...) list
    detail_ns = differ if len(differ) <= 500 else None
    report = (
        _detail(source, target, policy, detail_ns, window, compare_tier)
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
) -> dict:
    """Merge-join both sides in (namespace, id) order: every missing and mismatched id."""
    classify = policy.compile(now_ms())
    wanted = set(namespaces) if namespaces else None
    a, b = rows(source, classify, wanted, window), rows(target, classify, wanted, window)
    results: dict[str, NamespaceResult] = {}
    ra, rb = next(a, None), next(b, None)
    scanned = 0
    while ra is not None or rb is not None:
        ka = (ra.namespace, ra.id) if ra else None
        kb = (rb.namespace, rb.id) if rb else None
        if kb is None or (ka is not None and ka < kb):
            assert ra is not None  # only the source has a row left, or the smaller key
            res = results.setdefault(ra.namespace, NamespaceResult())
            _add(res.source, ra)
            _note(res, "missing_in_target", ra.id)
            ra, scanned = next(a, None), scanned + 1
        elif ka is None or kb < ka:
            assert rb is not None  # only the target has a row left, or the smaller key
            res = results.setdefault(rb.namespace, NamespaceResult())
            _add(res.target, rb)
            _note(res, "missing_in_source", rb.id)
            rb, scanned = next(b, None), scanned + 1
        else:
            assert ra is not None and rb is not None  # the same key on both sides
            res = results.setdefault(ra.namespace, NamespaceResult())
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
) -> dict:
    """Copy what is missing or stale in the target from the source (the source of truth)."""
    skind, spath = parse_uri(source)
    tkind, tpath = parse_uri(target)
    if skind != "sqlite" or tkind != "sqlite":
        raise MigrationError("repair works between stores", fix="use sqlite: URIs for --source and --target")
    src, dst = LegacyStore(spath), (MemoryOSStore if _is_memoryos(tpath) else LegacyStore)(tpath)
    classify = policy.compile(now_ms())
    wanted = set(namespaces) if namespaces else None
    target_rows = {(r.namespace, r.id): r for r in rows(target, classify, wanted, window)}
    copied = stale = deleted = 0
    pending: list[Record] = []
    seen = set()
    for r in rows(source, classify, wanted, window):
        seen.add((r.namespace, r.id))
        t = target_rows.get((r.namespace, r.id))
        if t is not None and (t.version, t.text) == (r.version, r.text):
            continue
        if t is not None and t.version > r.version:
            continue  # the target is newer: not the source's to overwrite; reported by compare()
        rec = src.get(r.namespace, r.id)
        if rec is None:
            continue
        pending.append(rec)
        copied += t is None
        stale += t is not None
        if len(pending) >= batch:
            dst.put_many(pending)
            pending = []
    if pending:
        dst.put_many(pending)
    if delete_extra:
        for key in set(target_rows) - seen:
            deleted += dst.delete(*key)
    after = compare(source, target, policy, namespaces, window, compare_tier=compare_tier)
    return {"copied_missing": copied, "replaced_stale": stale, "deleted_extra": deleted, "after": after}


def _is_memoryos(path: Path) -> bool:
    """A store whose records carry tiers is a MemoryOS store."""
    if not path.is_file():
        return False
    row = LegacyStore(path)._conn().execute("SELECT count(*) FROM records WHERE tier IS NOT NULL").fetchone()
    return bool(row and row[0])


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
