"""The judge on binned data: the gateway's request histograms and counters by cohort, over a window
of real traffic (Prometheus), to the same Verdict as per-request samples (`cutover.judge.verdict`).

Binned data holds, per cohort and operation, how many requests fell in each latency bucket and how
many failed: no request times, no answers. So:

- errors: the same one-sided Fisher test and Newcombe interval as per-request samples
  (`judge_error_counts`): counts are exact;
- latency, is the treatment slower? A Mann-Whitney test on the bucket ranks, ties counted (requests
  in one bucket are tied: `rank_test`), one-sided at alpha / operations, and for the tail a one-sided
  Fisher test of the share of requests above the bucket bound at the pooled p95 (`tail_test`), at
  5 alpha / operations (at most 0.05), as the per-request tail. Both compare bucket counts only, so
  they hold whatever the shape inside a bucket. A G-test of homogeneity over the buckets is
  reported (two-sided: any difference);
- latency, by how much? p50 and p99 by linear interpolation within their bucket (as
  histogram_quantile) for the ratio figures, and for each a distribution-free interval: the order
  statistics of the quantile's binomial interval, widened to the bounds of the buckets that hold
  them (`Histogram.quantile_interval`). The bound of a ratio is the treatment's lower bound over
  control's upper bound, so it states the bucket width as well as the sampling error;
- classification, the plan's thresholds: HOLD when a test says slower and the interpolated ratio is
  above the allowed increase (median: the rank test and p50; tail: the tail test and p99); ROLLBACK
  when even the bound of a ratio is above the critical increase. With the default buckets (a factor
  2 to 2.5 apart) a latency ROLLBACK needs the treatment's quantile about two buckets above
  control's: binned data can say "slower", rarely "certainly 20 % slower";
- recall quality needs answers: from the gateway's shadow reads (the drift histogram's mean parity
  drift: agreement = 1 - parity, against `topk_overlap_min`; top-k overlap and RBO reported) when it
  holds at least `MIN_OVERLAP_PAIRS` in the window, else not applicable (NotApplicable never blocks
  the verdict; NoData does).

The minimum: each cohort and operation needs `min_samples` successful requests, as per-request
samples do; under it the checks are NoData and the verdict HOLDs, saying so. Requests are counted
by cohort whatever path answered (a treatment request answered by legacy after a fallback is still
a treatment request). The duration histogram holds failed requests too (the gateway observes every
request): the latency checks judge them with the rest."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from cutover.judge.checks import (
    CRITICAL,
    HIGH,
    LOW,
    MIN_OVERLAP_PAIRS,
    NODATA,
    PASS,
    MetricResult,
    judge_error_counts,
)
from cutover.judge.verdict import Verdict, decide
from cutover.plan.model import Analysis

NOT_APPLICABLE = "NotApplicable"
COHORTS = ("control", "treatment")
TAIL_Q = 0.99  # the tail's ratio figure
TAIL_EDGE_Q = 0.95  # the tail test: requests above the bucket bound at the pooled p95


@dataclass(frozen=True)
class Histogram:
    """Per-bucket counts: `counts[i]` requests in (bounds[i - 1], bounds[i]] (the first bucket from 0),
    the last one in (bounds[-1], +Inf)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]

    @classmethod
    def from_cumulative(cls, cumulative: Mapping[float, float]) -> Histogram:
        """From Prometheus's cumulative `le` buckets (`math.inf` the +Inf one) to per-bucket counts.
        Counts from increase() are extrapolated, so rounded; a bucket read below the one before
        counts 0."""
        les = sorted(cumulative)
        if not les or les[-1] != math.inf:
            raise ValueError("a histogram needs its +Inf bucket")
        raw = [v if math.isfinite(v) and v > 0 else 0.0 for v in (cumulative[x] for x in les)]
        cum = np.maximum.accumulate(np.round(raw))
        return cls(tuple(les[:-1]), tuple(int(c) for c in np.diff(cum, prepend=0.0)))

    @classmethod
    def from_values(cls, bounds: Sequence[float], values: Iterable[float]) -> Histogram:
        """Observations counted into buckets as a Prometheus client does (upper bounds inclusive)."""
        idx = np.searchsorted(np.asarray(bounds, float), np.fromiter(values, float), side="left")
        return cls(tuple(bounds), tuple(int(c) for c in np.bincount(idx, minlength=len(bounds) + 1)))

    @property
    def n(self) -> int:
        return sum(self.counts)

    def edges(self, i: int) -> tuple[float, float]:
        return (0.0 if i == 0 else self.bounds[i - 1]), (self.bounds[i] if i < len(self.bounds) else math.inf)

    def coarsen(self, bounds: Sequence[float]) -> Histogram:
        """The same counts on fewer bounds (each of `bounds` one of this histogram's)."""
        cum = np.cumsum(self.counts)
        at = [self.bounds.index(b) for b in bounds]
        kept = np.concatenate([cum[at], cum[-1:]]) if at else cum[-1:]
        return Histogram(tuple(bounds), tuple(int(c) for c in np.diff(kept, prepend=0)))

    def _bucket(self, rank: float) -> int:
        """The bucket holding the request of (1-based) `rank`."""
        i = int(np.searchsorted(np.cumsum(self.counts), rank, side="left"))
        return min(i, len(self.counts) - 1)

    def quantile(self, q: float) -> float:
        """Linear within its bucket, as Prometheus's histogram_quantile (the +Inf bucket answers the
        highest finite bound); nan without requests."""
        n = self.n
        if n == 0:
            return math.nan
        rank = max(q * n, 1e-9)
        i = self._bucket(rank)
        lo, hi = self.edges(i)
        if hi == math.inf:
            return lo
        below = sum(self.counts[:i])
        return lo + (hi - lo) * (rank - below) / self.counts[i]

    def quantile_interval(self, q: float, confidence: float) -> tuple[float, float]:
        """Bounds of the true q-quantile, each one-sided at `confidence`: the order statistics of
        its binomial interval, widened to the edges of their buckets (0 and inf past the data)."""
        n = self.n
        if n == 0:
            return 0.0, math.inf
        k_lo = float(stats.binom.ppf(1 - confidence, n, q))  # P(X_(k_lo) <= x_q) >= confidence
        k_hi = float(stats.binom.isf(1 - confidence, n, q)) + 1
        lo = self.edges(self._bucket(k_lo))[0] if k_lo >= 1 else 0.0
        hi = self.edges(self._bucket(k_hi))[1] if k_hi <= n else math.inf
        return lo, hi


def common(c: Histogram, t: Histogram) -> tuple[Histogram, Histogram]:
    """Both on the bounds they share (two gateway versions may export different buckets)."""
    if c.bounds == t.bounds:
        return c, t
    shared = sorted(set(c.bounds) & set(t.bounds))
    return c.coarsen(shared), t.coarsen(shared)


def rank_test(c: Histogram, t: Histogram) -> dict[str, float]:
    """Mann-Whitney on bucket ranks (normal approximation, tie-corrected variance): the probability
    that a treatment request is slower than a control one (ties half) and one-sided p-values."""
    cc, tt = np.asarray(c.counts, float), np.asarray(t.counts, float)
    n1, n2 = cc.sum(), tt.sum()
    u = float((tt * (np.cumsum(cc) - cc + 0.5 * cc)).sum())
    tot, big_n = cc + tt, n1 + n2
    var = n1 * n2 / 12 * ((big_n + 1) - float((tot**3 - tot).sum()) / (big_n * (big_n - 1)))
    if var <= 0:  # every request in one bucket: nothing tells the cohorts apart
        return {"prob_slower": 0.5, "p_slower": 1.0, "p_faster": 1.0}
    z = (u - n1 * n2 / 2) / math.sqrt(var)
    return {"prob_slower": u / (n1 * n2), "p_slower": float(stats.norm.sf(z)), "p_faster": float(stats.norm.cdf(z))}


def homogeneity_p(c: Histogram, t: Histogram) -> float:
    """G-test of homogeneity over the buckets either cohort uses (two-sided: any difference)."""
    table = np.array([c.counts, t.counts], float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, lambda_="log-likelihood").pvalue)


def tail_test(c: Histogram, t: Histogram) -> dict[str, Any]:
    """The share of requests above the bucket bound at the pooled p95, treatment against control:
    a one-sided Fisher test (the bound is chosen from both cohorts together, so it favours neither)."""
    pooled = Histogram(c.bounds, tuple(a + b for a, b in zip(c.counts, t.counts, strict=True)))
    i = pooled._bucket(TAIL_EDGE_Q * pooled.n)
    if i >= len(c.bounds):  # the pooled p95 is in the +Inf bucket: no bound to count above
        return {"edge_ms": None, "p": 1.0}
    c_above, t_above = sum(c.counts[i + 1 :]), sum(t.counts[i + 1 :])
    p = stats.fisher_exact([[t_above, t.n - t_above], [c_above, c.n - c_above]], alternative="greater").pvalue
    return {
        "edge_ms": c.bounds[i] * 1000,
        "share_control": c_above / c.n,
        "share_treatment": t_above / t.n,
        "p": float(p),
    }


def _ratio(num: float, den: float) -> float:
    if den == 0:
        return math.inf
    return 0.0 if den == math.inf else num / den


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def judge_binned_latency(
    name: str, c: Histogram, t: Histogram, ok: tuple[int, int], a: Analysis, ops: int = 1
) -> MetricResult:
    """Treatment against control latency from bucket counts (seconds), classified with the plan's
    median and tail thresholds. `ok`: the two cohorts' successful requests (the minimum's count)."""
    r = MetricResult(name, PASS, c.n, t.n)
    if min(ok) < a.min_samples:
        r.classification = NODATA
        r.reasons.append(
            f"{name}: {ok[0]} control and {ok[1]} treatment successful requests in the window, "
            f"{a.min_samples} needed per cohort"
        )
        return r
    c, t = common(c, t)
    each = a.alpha / max(ops, 1)
    tail_each = min(0.05, 5 * each)
    rank, tail, g_p = rank_test(c, t), tail_test(c, t), homogeneity_p(c, t)
    p50 = c.quantile(0.5), t.quantile(0.5)
    p99 = c.quantile(TAIL_Q), t.quantile(TAIL_Q)
    c50, t50 = c.quantile_interval(0.5, 1 - each), t.quantile_interval(0.5, 1 - each)
    c99, t99 = c.quantile_interval(TAIL_Q, 1 - tail_each), t.quantile_interval(TAIL_Q, 1 - tail_each)
    med, med_lo, med_hi = _ratio(p50[1], p50[0]), _ratio(t50[0], c50[1]), _ratio(t50[1], c50[0])
    tail_r, tail_lo = _ratio(p99[1], p99[0]), _ratio(t99[0], c99[1])
    r.figures = {
        "median_ratio": med,
        "median_ratio_interval": [_finite(med_lo), _finite(med_hi)],
        "tail_ratio": tail_r,
        "tail_ratio_interval": [_finite(tail_lo), _finite(_ratio(t99[1], c99[0]))],
        "tail_quantile": TAIL_Q,
        "bound_confidence": {"median": 1 - each, "tail": 1 - tail_each},
        "prob_treatment_slower": rank["prob_slower"],
        "rank_test_p": rank["p_slower"],
        "tail_test": tail,
        "homogeneity_g_p": g_p,
        "buckets": len(c.counts),
        "p50_control_ms": p50[0] * 1000,
        "p50_treatment_ms": p50[1] * 1000,
        "p50_control_bucket_ms": [c50[0] * 1000, _finite(c50[1] * 1000)],
        "p50_treatment_bucket_ms": [t50[0] * 1000, _finite(t50[1] * 1000)],
        "p99_control_ms": p99[0] * 1000,
        "p99_treatment_ms": p99[1] * 1000,
    }
    body_allowed, body_critical = 1 + a.median_regression_max, 1 + a.median_regression_critical
    tail_allowed, tail_critical = 1 + a.tail_regression_max, 1 + a.tail_regression_critical
    said = (
        f"p50 x{med:.3f} (bound {med_lo:.3f}), p99 x{tail_r:.3f} (bound {tail_lo:.3f}), treatment slower in "
        f"{rank['prob_slower']:.1%} of pairs (rank test p={rank['p_slower']:.2g}), above "
        f"{tail['edge_ms'] or 0:g} ms p={tail['p']:.2g}, over {c.n} control and {t.n} treatment requests"
    )
    if med_lo > body_critical or tail_lo > tail_critical:
        r.classification = CRITICAL
        r.reasons.append(
            f"{name}: treatment critically slower, beyond the bucket bounds: {said}; critical p50 "
            f"x{body_critical:.2f}, p99 x{tail_critical:.2f}"
        )
    elif (rank["p_slower"] < each and med > body_allowed) or (tail["p"] < tail_each and tail_r > tail_allowed):
        r.classification = HIGH
        r.reasons.append(
            f"{name}: treatment slower than allowed: {said}; allowed p50 x{body_allowed:.2f}, p99 x{tail_allowed:.2f}"
        )
    elif rank["p_faster"] < each and med < 1:
        r.classification = LOW
        r.reasons.append(f"{name}: treatment faster (p50 x{med:.3f}, rank test p={rank['p_faster']:.2g})")
    return r


def judge_shadow_overlap(drift: Mapping[str, tuple[float, float]], a: Analysis) -> MetricResult:
    """Recall quality from the gateway's shadow reads: `drift` maps a measure (parity, jaccard, rbo)
    to (sum, count) of its drift histogram over the window. Not applicable without enough of them."""
    total, count = drift.get("parity", (0.0, 0.0))
    n = round(count)
    r = MetricResult("recall_overlap", PASS, n, n)
    if n < MIN_OVERLAP_PAIRS:
        r.classification = NOT_APPLICABLE
        r.reasons.append(
            f"recall quality: not applicable: {n} shadow reads in the window ({MIN_OVERLAP_PAIRS} needed); "
            "binned data carries no answers (judge it from per-request samples)"
        )
        return r
    mean = min(max(total / count, 0.0), 1.0)
    # drift is in [0, 1], so its variance is at most mean (1 - mean): a bound that needs no buckets
    se = math.sqrt(max(mean * (1 - mean), 1e-12) / n)
    z = float(stats.norm.ppf(1 - a.alpha / 2))
    agree, hi = 1 - mean, min(1.0, 1 - mean + z * se)

    def mean_of(measure: str) -> float | None:
        s, k = drift.get(measure, (0.0, 0.0))
        return 1 - s / k if k > 0 else None

    r.figures = {
        "shadow_reads": n,
        "agreement": agree,
        "agreement_ci": [max(0.0, agree - z * se), hi],
        "topk_overlap": mean_of("jaccard"),
        "rbo": mean_of("rbo"),
        "floor": a.topk_overlap_min,
    }
    said = f"shadow reads agree {agree:.3f} (1 - mean parity drift, upper bound {hi:.3f}) over {n} reads"
    if hi < a.topk_overlap_min:
        r.classification = CRITICAL
        r.reasons.append(f"recall quality: the treatment misses what control holds: {said}, floor {a.topk_overlap_min}")
    elif agree < a.topk_overlap_min:
        r.classification = HIGH
        r.reasons.append(f"recall quality: {said}, under the floor {a.topk_overlap_min}")
    return r


@dataclass
class Cell:
    """One cohort's one operation over the window."""

    ok: int = 0
    errors: int = 0
    latency: Histogram = field(default_factory=lambda: Histogram((), (0,)))


@dataclass
class BinnedData:
    cells: dict[tuple[str, str], Cell]  # (cohort, op)
    drift: dict[str, tuple[float, float]]  # measure -> (sum, count) of shadow-read drift
    source: str

    def cell(self, cohort: str, op: str) -> Cell:
        return self.cells.get((cohort, op), Cell())


def _value(row: Mapping[str, Any]) -> float:
    v = float(row["value"][1])
    return v if math.isfinite(v) else 0.0


def from_prometheus(
    buckets: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    drift_sum: Sequence[Mapping[str, Any]],
    drift_count: Sequence[Mapping[str, Any]],
    source: str,
) -> BinnedData:
    """BinnedData from instant vectors (`cutover.ops.prometheus.query` rows): duration buckets by
    le, cohort and op; requests by cohort, op and outcome; drift sum and count by measure."""
    cum: dict[tuple[str, str], dict[float, float]] = {}
    for row in buckets:
        m = row["metric"]
        if m.get("cohort") in COHORTS and "op" in m and "le" in m:
            key = (m["cohort"], m["op"])
            le = float(m["le"])
            cum.setdefault(key, {})[le] = cum.get(key, {}).get(le, 0.0) + _value(row)
    cells: dict[tuple[str, str], Cell] = {}
    for row in requests:
        m = row["metric"]
        if m.get("cohort") in COHORTS and "op" in m:
            cell = cells.setdefault((m["cohort"], m["op"]), Cell())
            if m.get("outcome") == "error":
                cell.errors += round(_value(row))
            else:
                cell.ok += round(_value(row))
    for key, buckets_of in cum.items():
        if math.inf in buckets_of:
            cells.setdefault(key, Cell()).latency = Histogram.from_cumulative(buckets_of)
    counts = {r["metric"].get("measure", ""): _value(r) for r in drift_count}
    drift = {
        r["metric"].get("measure", ""): (_value(r), counts.get(r["metric"].get("measure", ""), 0.0)) for r in drift_sum
    }
    return BinnedData(cells, drift, source)


def judge_binned(
    data: BinnedData, a: Analysis, treatment_share: float = 0.5, ops: Sequence[str] = ("recall", "remember")
) -> Verdict:
    """The verdict on binned data: latency and errors per operation, recall quality from shadow reads
    when the window holds them; `decide` as for per-request samples, without the checks that are
    not applicable."""
    metrics: list[MetricResult] = []
    for op in ops:
        c, t = data.cell("control", op), data.cell("treatment", op)
        metrics.append(judge_binned_latency(f"{op}_latency", c.latency, t.latency, (c.ok, t.ok), a, len(ops)))
        metrics.append(judge_error_counts(f"{op}_errors", c.errors, c.ok + c.errors, t.errors, t.ok + t.errors, a))
    metrics.append(judge_shadow_overlap(data.drift, a))
    n = {co: sum(x.ok + x.errors for (cohort, _), x in data.cells.items() if cohort == co) for co in COHORTS}
    verdict = decide([m for m in metrics if m.classification != NOT_APPLICABLE], n, treatment_share, a)
    verdict.reasons += [r for m in metrics if m.classification == NOT_APPLICABLE for r in m.reasons]
    verdict.metrics = metrics
    verdict.source = data.source
    return verdict
