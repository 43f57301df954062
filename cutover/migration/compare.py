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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from cutover.migration.build import TIERS
from cutover.migration.options import parse_uri
from cutover.migration.sides import (
    MASK,
    SAMPLE,
    VALID_TIERS,
    Row,
    Tiers,
    digest_of,
    lines_in,
    open_sqlite,
    row_digest,
    rows,
    valid_jsonl,
)
from cutover.migration.targets import checkpoint_as_of
from cutover.migration.tiering import Policy
from cutover.store.records import now_ms, record_problem


@dataclass(frozen=True)
class Scope:
    """What a comparison reads and how: the namespaces (None: every one), the observed_at window,
    whether the tier counts, and the as-of records without a tier are classified at."""

    namespaces: frozenset[str] | None = None
    window: tuple[int, int] | None = None
    with_tier: bool = True
    as_of: int = 0


@dataclass
class NamespaceResult:
    source: dict[Any, list[int]] = field(default_factory=dict)  # tier -> [count, checksum]
    target: dict[Any, list[int]] = field(default_factory=dict)
    missing_in_target: list[Any] = field(default_factory=list)
    missing_in_source: list[Any] = field(default_factory=list)
    mismatched: list[Any] = field(default_factory=list)
    counts: dict[str, Any] = field(
        default_factory=lambda: {"missing_in_target": 0, "missing_in_source": 0, "mismatched": 0}
    )

    @property
    def parity(self) -> bool:
        return not any(self.counts.values())


def _add(side: dict[Any, list[int]], r: Row) -> None:
    c = side.setdefault(r.tier, [0, 0])
    c[0] += 1
    c[1] = (c[1] + row_digest(r)) & MASK


def _note(res: NamespaceResult, kind: str, item: Any) -> None:
    res.counts[kind] += 1
    if len(getattr(res, kind)) < SAMPLE:
        getattr(res, kind).append(item)


# -- summary pass ------------------------------------------------------------------------------------
def _raw_sqlite(
    path: Path,
    classify: Callable[[dict[str, Any]], tuple[str, str]],
    scope: Scope,
) -> Iterator[tuple[Any, ...]]:
    """(namespace, id, version, text, tier) in storage order; tiers classified where missing."""
    conn, where, args = open_sqlite(path, scope.namespaces, scope.window)
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


def _raw_jsonl(
    path: Path, tiers: Tiers, scope: Scope, span: tuple[int, int] | None, counts: dict[str, int] | None
) -> Iterator[tuple[Any, ...]]:
    """(namespace, id, version, text, tier) of the export's records as `valid_jsonl` reads them
    (the summary pass's loop: no Row built per record)."""
    namespaces = scope.namespaces
    if scope.window or not path.is_file():
        for r in valid_jsonl(path, tiers, namespaces, scope.window, span, counts):
            yield r.namespace, r.id, r.version, r.text, r.tier
        return
    classify, loads, bad_json = tiers.policy.compile(tiers.as_of), orjson.loads, orjson.JSONDecodeError
    bad = 0
    with open(path, "rb") as f:
        lines: Iterable[bytes] = f if span is None else lines_in(f, *span)
        for line in lines:
            try:
                d = loads(line)
            except bad_json:
                bad += bool(line.strip())  # migrate skips blank lines, quarantines the others
                continue
            if record_problem(d) is not None:
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


def _merge(into: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add one summary into another: counts add, checksums add modulo 2^64 (order-independent)."""
    for ns, per in part.items():
        mine = into.setdefault(ns, {})
        for key, (n, c) in per.items():
            m = mine.setdefault(key, [0, 0])
            m[0] += n
            m[1] = (m[1] + c) & MASK
    return into


def summarize(
    uri: str, policy: Policy, scope: Scope, span: tuple[int, int] | None = None, counts: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per namespace: {tier: [count, checksum]} and, under "*", [count, checksum] over all its records
    (without the tier when the scope leaves it out); records without a tier classified at the scope's
    as-of. `span`: a byte range of a jsonl: file; `counts` gets the lines left out as migrate
    quarantines them ("quarantined")."""
    kind, path = parse_uri(uri)
    with_tier = scope.with_tier
    tiers = Tiers(policy, scope.as_of)
    out: dict[str, dict[str, Any]] = {}
    get = out.get
    rows_ = (
        _raw_sqlite(path, policy.compile(scope.as_of), scope)
        if kind == "sqlite"
        else _raw_jsonl(path, tiers, scope, span, counts)
    )
    for ns, id_, ver, text, tier in rows_:
        d = digest_of(id_, ver, text, tier)
        per = get(ns)
        if per is None:
            per = out[ns] = {"*": [0, 0]}
        t = per.get(tier)
        if t is None:
            t = per[tier] = [0, 0]
        t[0] += 1
        t[1] = (t[1] + d) & MASK
        if not with_tier:
            d = digest_of(id_, ver, text)
        a = per["*"]
        a[0] += 1
        a[1] = (a[1] + d) & MASK
    return out


def _summary_job(uri: str, policy: Policy, scope: Scope, span: tuple[int, int] | None) -> tuple[dict[str, Any], int]:
    counts: dict[str, Any] = {}
    return summarize(uri, policy, scope, span, counts), counts.get("quarantined", 0)


def _summaries(
    source: str, target: str, policy: Policy, scope: Scope
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
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
            (side, pool.submit(_summary_job, source if side == "source" else target, policy, scope, span))
            for side, span in jobs
        ]
        out: dict[str, dict[str, Any]] = {"source": {}, "target": {}}
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


def _spans(uri: str, parts: int = 2) -> list[Any]:
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
) -> dict[str, Any]:
    """Source against target. Records without a tier are classified as migrate classified them: at
    the as-of their counterpart recorded in its provenance, else at `default_as_of`."""
    at = default_as_of(source, target, as_of)
    scope = Scope(frozenset(namespaces) if namespaces else None, window, compare_tier, at)
    sa, sb, quarantined = _summaries(source, target, policy, scope)
    same = {ns for ns in set(sa) & set(sb) if sa[ns]["*"] == sb[ns]["*"]}
    differ = sorted((set(sa) | set(sb)) - same)
    # many differing namespaces: one full detail pass rather than a huge IN (...) list
    detail = replace(scope, namespaces=frozenset(differ) if len(differ) <= 500 else None)
    report = _detail(source, target, policy, detail) if differ else _empty(source, target, scope)
    for ns in same:  # summaries agree: parity, and the tier table straight from them
        tiers = {t: v for t, v in sa[ns].items() if t != "*"}
        target_tiers = {t: v for t, v in sb[ns].items() if t != "*"} if compare_tier else tiers
        report["per_namespace"][ns] = {
            "parity": True,
            "missing_in_target": 0,
            "missing_in_source": 0,
            "mismatched": 0,
            "tiers": _tier_table(tiers, target_tiers),
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


def _tier_table(source: dict[Any, list[int]], target: dict[Any, list[int]]) -> dict[Any, dict[str, Any]]:
    """Per tier: each side's count and checksum (from [count, checksum] per tier)."""
    return {
        t: {
            "source_count": source.get(t, [0, 0])[0],
            "target_count": target.get(t, [0, 0])[0],
            "source_checksum": f"{source.get(t, [0, 0])[1]:016x}",
            "target_checksum": f"{target.get(t, [0, 0])[1]:016x}",
        }
        for t in sorted(set(source) | set(target))
    }


def _empty(source: str, target: str, scope: Scope) -> dict[str, Any]:
    return {
        "source": source,
        "target": target,
        "window": scope.window,
        "compare_tier": scope.with_tier,
        "records_scanned": 0,
        "namespaces": 0,
        "parity": True,
        "totals": {"missing_in_target": 0, "missing_in_source": 0, "mismatched": 0},
        "per_namespace": {},
    }


# -- detail pass -------------------------------------------------------------------------------------
def _detail(source: str, target: str, policy: Policy, scope: Scope) -> dict[str, Any]:
    """Merge-join both sides in (namespace, id) order: every missing and mismatched id."""
    tiers = Tiers(policy, scope.as_of)
    wanted, window, compare_tier = scope.namespaces, scope.window, scope.with_tier
    counts_a: dict[str, Any] = {}
    counts_b: dict[str, Any] = {}
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
            "tiers": _tier_table(r.source, r.target),
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
