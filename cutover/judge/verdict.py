"""The judge: canary (treatment) versus control, from per-request samples, to a verdict.

Per latency metric, a Kayenta-style classification: Mann-Whitney U for a shift, the Hodges-Lehmann
shift of log latency (a ratio) with its confidence interval, the mean ratio, and the p99 ratio with
a bootstrap interval; direction "increase is bad"; the plan's allowed and critical effects.
Errors: a one-sided Fisher exact test (exact at small counts, so new errors against a zero baseline
fail) with a Newcombe interval for the difference. Recall quality: top-k overlap and rank-biased
overlap of treatment and control answers to the same queries. Sample-ratio mismatch (chi-square
against the configured split) voids the verdict. A cohort under the plan's minimum samples is
NoData, and NoData never passes. A sequential, always-valid guardrail (mixture SPRT) supports
checking at every interval without inflating the false-alarm rate.

Verdict: ROLLBACK when any metric is critically worse; HOLD when any is worse than allowed, has no
data, or the comparison is void; PROMOTE otherwise. Every reason is listed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson
from scipy import stats

from cutover.judge.drift import rbo
from cutover.judge.evidence import Verdict as Decision
from cutover.plan.model import Analysis

PASS, HIGH, LOW, NODATA, CRITICAL = "Pass", "High", "Low", "NoData", "Critical"
MIN_OVERLAP_PAIRS = 20  # queries answered in both cohorts before recall quality is judged


@dataclass
class Sample:
    ts: float
    cohort: str
    op: str
    latency_ms: float
    ok: bool
    status: int = 200
    ids: list | None = None
    query: str | None = None
    rss_mb: float | None = None
    agent: str | None = None  # the targeting key: the unit of randomization


class SampleError(ValueError):
    pass


def load_samples(paths: Iterable[Path]) -> list[Sample]:
    out: list[Sample] = []
    for path in paths:
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = orjson.loads(line)
                    out.append(
                        Sample(
                            float(d["ts"]),
                            d["cohort"],
                            d["op"],
                            float(d["latency_ms"]),
                            bool(d["ok"]),
                            int(d.get("status", 200)),
                            d.get("ids"),
                            d.get("query"),
                            d.get("rss_mb"),
                            d.get("agent"),
                        )
                    )
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise SampleError(
                        f"{path}:{n}: not a sample ({exc}); need ts, cohort, op, latency_ms, ok"
                    ) from None
    return out


@dataclass
class MetricResult:
    name: str
    classification: str
    n_control: int
    n_treatment: int
    reasons: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


# -- statistics ------------------------------------------------------------------------------------
def hodges_lehmann(x: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator, cap: int = 1500):
    """Shift of y over x (median of pairwise differences) with a distribution-free CI (Moses)."""
    if len(x) > cap:
        x = rng.choice(x, cap, replace=False)
    if len(y) > cap:
        y = rng.choice(y, cap, replace=False)
    m, n = len(x), len(y)
    d = (y[:, None] - x[None, :]).ravel()
    z = stats.norm.ppf(1 - alpha / 2)
    k = int(max(0, math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12))))
    hi, mid = min(len(d) - 1, m * n - k - 1), len(d) // 2
    # only these order statistics are needed: a partition finds them in linear time (no full sort)
    wanted = sorted({k, hi, mid} | ({mid - 1} if len(d) % 2 == 0 and mid > 0 else set()))
    d.partition(wanted)
    median = d[mid] if len(d) % 2 else (d[mid - 1] + d[mid]) / 2
    return float(median), float(d[k]), float(d[hi])


def bootstrap_ratio(x: np.ndarray, y: np.ndarray, q: float, alpha: float, rng: np.random.Generator, b: int = 400):
    """Ratio of the q-quantiles y/x with a percentile bootstrap interval."""
    bx = np.quantile(rng.choice(x, (b, len(x)), replace=True), q, axis=1)
    by = np.quantile(rng.choice(y, (b, len(y)), replace=True), q, axis=1)
    ratios = by / np.maximum(bx, 1e-12)
    point = float(np.quantile(y, q) / max(np.quantile(x, q), 1e-12))
    lo, hi = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


def newcombe(e1: int, n1: int, e2: int, n2: int, alpha: float) -> tuple[float, float]:
    """Interval for p2 - p1 from two Wilson intervals (Newcombe's method 10)."""
    z = stats.norm.ppf(1 - alpha / 2)

    def wilson(e, n):
        p = e / n
        c = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        mid = (p + z * z / (2 * n)) / (1 + z * z / n)
        return mid - c, mid + c

    l1, u1 = wilson(e1, n1)
    l2, u2 = wilson(e2, n2)
    p1, p2 = e1 / n1, e2 / n2
    d = p2 - p1
    return d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2), d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)


def msprt(x: np.ndarray, y: np.ndarray, tau: float = 0.1) -> float:
    """Always-valid p-value for a difference of means (normal mixture SPRT, Johari et al. 2017):
    rejecting when it falls under alpha keeps the false-alarm rate at alpha however often one looks."""
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return 1.0
    var = float(np.var(x, ddof=1) / n1 + np.var(y, ddof=1) / n2)
    if var <= 0:
        return 1.0
    delta = float(np.mean(y) - np.mean(x))
    if delta <= 0:  # a guardrail alarms on "worse" only (one-sided: never more alarms than two-sided)
        return 1.0
    t2 = tau * tau
    log_lambda = 0.5 * math.log(var / (var + t2)) + t2 * delta * delta / (2 * var * (var + t2))
    return float(min(1.0, math.exp(-log_lambda)))


TAIL_QUANTILES = (0.90, 0.95, 0.99)
TAIL_ASYMPTOTIC_MIN = 20  # expected requests of the smaller cohort above the highest tail cut for the normal law
TAIL_PERMUTATIONS = 2000


def tail_rank_test(
    control: np.ndarray, treatment: np.ndarray, quantiles=TAIL_QUANTILES, rng: np.random.Generator | None = None
) -> tuple[float, float]:
    """One-sided p-value that the treatment is slower in the tail, and the tail (pooled quantile) that
    shows it most.

    Per quantile q, a linear rank statistic with scores max(0, rank - qN): zero in the body, growing
    with rank above the pooled q-quantile (an upper-tail-weighted Wilcoxon). Under no difference the
    cohort labels are exchangeable, so the statistics' exact permutation means and covariances are
    known. The test takes the largest standardized statistic and its p-value from the joint normal
    law of all of them (they are strongly correlated, so this is sharper than Bonferroni). When the
    smaller cohort is too small for that law, from 2 000 random relabelings instead."""
    x = np.concatenate([control, treatment])
    big_n, n_c, n_t = len(x), len(control), len(treatment)
    if n_c < 2 or n_t < 2:
        return 1.0, quantiles[0]
    ranks = stats.rankdata(x)
    scores = np.array([np.maximum(0.0, ranks - q * big_n) for q in quantiles])
    centred = scores - scores.mean(axis=1, keepdims=True)
    cov = n_c * n_t / (big_n * (big_n - 1)) * (centred @ centred.T)
    sd = np.sqrt(np.diag(cov))
    if np.any(sd <= 0):
        return 1.0, quantiles[0]
    z = centred[:, n_c:].sum(axis=1) / sd
    best = int(np.argmax(z))
    if min(n_c, n_t) * (1 - max(quantiles)) < TAIL_ASYMPTOTIC_MIN:
        # few of the smaller cohort's requests can land in the tail: the normal law is a poor fit
        # there, so the p-value comes from random relabelings (a Monte Carlo permutation test)
        rng = rng if rng is not None else np.random.default_rng(0)
        hits, done = 0, 0
        while done < TAIL_PERMUTATIONS:
            b = min(200, TAIL_PERMUTATIONS - done)
            idx = rng.permuted(np.tile(np.arange(big_n), (b, 1)), axis=1)[:, :n_t]
            perm_z = (centred[:, idx].sum(axis=2) / sd[:, None]).max(axis=0)
            hits += int((perm_z >= z[best] - 1e-12).sum())
            done += b
        return (hits + 1) / (done + 1), quantiles[best]
    corr = cov / np.outer(sd, sd)
    joint = stats.multivariate_normal(mean=np.zeros(len(quantiles)), cov=corr, allow_singular=True, seed=0)
    p = float(1.0 - joint.cdf(np.full(len(quantiles), z[best])))
    return min(1.0, max(p, 0.0)), quantiles[best]


# -- metrics ---------------------------------------------------------------------------------------
def judge_latency(
    name: str, control: np.ndarray, treatment: np.ndarray, a: Analysis, rng: np.random.Generator
) -> MetricResult:
    r = MetricResult(name, PASS, len(control), len(treatment))
    if len(control) < a.min_samples or len(treatment) < a.min_samples:
        r.classification = NODATA
        r.reasons.append(
            f"{name}: {len(control)} control and {len(treatment)} treatment samples, {a.min_samples} needed per cohort"
        )
        return r
    lc, lt = np.log(np.maximum(control, 1e-6)), np.log(np.maximum(treatment, 1e-6))
    u = stats.mannwhitneyu(lt, lc, alternative="two-sided")
    hl, hl_lo, hl_hi = hodges_lehmann(lc, lt, a.alpha, rng)
    p99, p99_lo, p99_hi = bootstrap_ratio(control, treatment, 0.99, a.alpha, rng)
    mean_ratio = float(np.mean(treatment) / max(np.mean(control), 1e-12))
    # Tail: rank tests that look only above the pooled p90, p95 and p99 (jointly); a tail-only
    # regression moves them even when the median does not move.
    tail_p, q_at = tail_rank_test(control, treatment, rng=rng)
    cut = float(np.quantile(np.concatenate([control, treatment]), q_at))
    ec, et = int((control > cut).sum()), int((treatment > cut).sum())
    shift, shift_lo, shift_hi = math.exp(hl), math.exp(hl_lo), math.exp(hl_hi)
    r.figures = {
        "mann_whitney_p": float(u.pvalue),
        "hl_ratio": shift,
        "hl_ratio_ci": [shift_lo, shift_hi],
        "mean_ratio": mean_ratio,
        "p99_ratio": p99,
        "p99_ratio_ci": [p99_lo, p99_hi],
        "tail_exceedances": {"quantile": q_at, "control": ec, "treatment": et, "tail_rank_p": tail_p},
        "p50_control_ms": float(np.median(control)),
        "p50_treatment_ms": float(np.median(treatment)),
        "p99_control_ms": float(np.quantile(control, 0.99)),
        "p99_treatment_ms": float(np.quantile(treatment, 0.99)),
    }
    allowed, critical = 1 + a.p99_regression_max, 1 + a.p99_regression_critical
    # Body of the distribution: a significant shift (MWU) whose lower CI bound is above no change and
    # whose estimate is above the allowed effect. Tail: the tail rank test, and a p99 (or slowest-5 %
    # mean) ratio above the allowed effect.
    # The tail test runs at 5 alpha (at most 5 %): a tail-only regression leaves few requests to count,
    # and a tail alarm alone can only HOLD, never ROLLBACK (that needs the p99 interval past critical).
    k = max(1, len(treatment) // 20)
    tail_mean = float(
        np.sort(treatment)[-k:].mean() / max(np.sort(control)[-max(1, len(control) // 20) :].mean(), 1e-12)
    )
    # the size of a tail effect: the largest of the tail's quantile ratios and the slowest-5 % mean
    # ratio (the p99 alone is noisy in a heavy tail; a significant tail test still comes first)
    q_ratios = {q: float(np.quantile(treatment, q) / max(np.quantile(control, q), 1e-12)) for q in (0.95, 0.975)}
    tail_effect = max(p99, tail_mean, *q_ratios.values())
    r.figures["tail_mean_ratio"] = tail_mean
    r.figures["tail_effect"] = tail_effect
    body_worse = u.pvalue < a.alpha and shift_lo > 1 and shift > allowed
    tail_worse = tail_p < min(0.05, 5 * a.alpha) and tail_effect > allowed
    if (body_worse and shift_lo > critical) or (tail_worse and p99_lo > critical):
        r.classification = CRITICAL
        r.reasons.append(
            f"{name}: treatment critically slower (median shift x{shift:.3f} [{shift_lo:.3f}, {shift_hi:.3f}], "
            f"p99 x{p99:.3f} [{p99_lo:.3f}, {p99_hi:.3f}]; critical x{critical:.2f})"
        )
    elif body_worse or tail_worse:
        r.classification = HIGH
        r.reasons.append(
            f"{name}: treatment slower than allowed x{allowed:.2f} (median shift x{shift:.3f} "
            f"[{shift_lo:.3f}, {shift_hi:.3f}], MWU p={u.pvalue:.2g}; p99 x{p99:.3f} [{p99_lo:.3f}, {p99_hi:.3f}], "
            f"{et} vs {ec} requests over a pooled tail quantile, p={tail_p:.2g})"
        )
    elif u.pvalue < a.alpha and shift_hi < 1:
        r.classification = LOW
        r.reasons.append(f"{name}: treatment faster (median shift x{shift:.3f})")
    return r


def judge_errors(name: str, control_ok: np.ndarray, treatment_ok: np.ndarray, a: Analysis) -> MetricResult:
    n1, n2 = len(control_ok), len(treatment_ok)
    r = MetricResult(name, PASS, n1, n2)
    if n1 < a.min_samples or n2 < a.min_samples:
        r.classification = NODATA
        r.reasons.append(f"{name}: {n1} control and {n2} treatment samples, {a.min_samples} needed per cohort")
        return r
    e1, e2 = int(n1 - control_ok.sum()), int(n2 - treatment_ok.sum())
    p = float(stats.fisher_exact([[e2, n2 - e2], [e1, n1 - e1]], alternative="greater").pvalue)
    lo, hi = newcombe(e1, n1, e2, n2, a.alpha)
    r.figures = {
        "control_errors": e1,
        "treatment_errors": e2,
        "control_rate": e1 / n1,
        "treatment_rate": e2 / n2,
        "difference": e2 / n2 - e1 / n1,
        "difference_ci": [lo, hi],
        "fisher_p": p,
    }
    alpha_err = min(0.05, a.alpha * 5)  # errors are rare events: a one-sided test at 5 alpha, at most 5 %
    if p < alpha_err and lo > a.error_rate_increase_max:
        r.classification = CRITICAL
        r.reasons.append(
            f"{name}: treatment error rate {e2 / n2:.3%} vs {e1 / n1:.3%}, increase "
            f"[{lo:.3%}, {hi:.3%}] above the allowed {a.error_rate_increase_max:.2%} (Fisher p={p:.2g})"
        )
    elif p < alpha_err:
        r.classification = HIGH
        r.reasons.append(
            f"{name}: treatment error rate {e2 / n2:.3%} vs control {e1 / n1:.3%} "
            f"({e2} vs {e1} errors, Fisher p={p:.2g})"
        )
    return r


def judge_overlap(
    pairs: list[tuple[list, list]], a: Analysis, rng: np.random.Generator, min_pairs: int = MIN_OVERLAP_PAIRS
) -> MetricResult:
    r = MetricResult("recall_overlap", PASS, len(pairs), len(pairs))
    if len(pairs) < min_pairs:
        r.classification = NODATA
        r.reasons.append(f"recall quality: {len(pairs)} queries answered in both cohorts, {min_pairs} needed")
        return r
    k = a.top_k
    overlaps = np.array(
        [
            1.0
            if not c[:k] and not t[:k]
            # both empty: the same answer
            else len(set(c[:k]) & set(t[:k])) / min(k, max(len(c[:k]), len(t[:k])))
            for c, t in pairs
        ]
    )
    rbos = np.array([rbo(c, t, a.rbo_p, k) for c, t in pairs])
    boots = rng.choice(overlaps, (400, len(overlaps)), replace=True).mean(axis=1)
    lo, hi = np.quantile(boots, [a.alpha / 2, 1 - a.alpha / 2])
    r.figures = {
        "pairs": len(pairs),
        "topk_overlap": float(overlaps.mean()),
        "topk_overlap_ci": [float(lo), float(hi)],
        "rbo": float(rbos.mean()),
        "floor": a.topk_overlap_min,
    }
    if hi < a.topk_overlap_min:
        r.classification = CRITICAL
        r.reasons.append(
            f"recall quality: top-{k} overlap {overlaps.mean():.3f} [{lo:.3f}, {hi:.3f}] "
            f"clearly under the floor {a.topk_overlap_min}"
        )
    elif overlaps.mean() < a.topk_overlap_min:
        r.classification = HIGH
        r.reasons.append(f"recall quality: top-{k} overlap {overlaps.mean():.3f} under the floor {a.topk_overlap_min}")
    return r


def sample_ratio(n_control: int, n_treatment: int, treatment_share: float) -> float:
    """p-value of the observed split against the configured one."""
    total = n_control + n_treatment
    if total == 0 or not 0 < treatment_share < 1:
        return 1.0
    expected = [total * (1 - treatment_share), total * treatment_share]
    return float(stats.chisquare([n_control, n_treatment], expected).pvalue)


@dataclass
class Verdict:
    verdict: Decision
    score: float
    reasons: list[str]
    metrics: list[MetricResult]
    srm_p: float
    samples: dict
    sequential: dict

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "score": self.score,
            "reasons": self.reasons,
            "srm_p": self.srm_p,
            "samples": self.samples,
            "sequential": self.sequential,
            "metrics": [asdict(m) for m in self.metrics],
        }


def _pairs(samples: Sequence[Sample]) -> list[tuple[list, list]]:
    last: dict[tuple[str, str], list] = {}
    for s in samples:
        if s.op == "recall" and s.ok and s.query and s.ids is not None:
            last[(s.query, s.cohort)] = s.ids
    return [(last[(q, "control")], ids) for (q, c), ids in last.items() if c == "treatment" and (q, "control") in last]


def missing_samples(samples: Sequence[Sample], a: Analysis, ops: Sequence[str] = ("recall", "remember")) -> list[str]:
    """What a verdict still lacks: each cohort and operation below `a.min_samples` successful
    requests, and too few queries answered in both cohorts; empty when `judge` has enough."""
    missing = []
    for op in ops:
        for cohort in ("control", "treatment"):
            n = sum(1 for s in samples if s.cohort == cohort and s.op == op and s.ok)
            if n < a.min_samples:
                missing.append(f"{op} {cohort}: {n} of {a.min_samples}")
    pairs = len(_pairs(samples))
    if pairs < MIN_OVERLAP_PAIRS:
        missing.append(f"recall overlap: {pairs} of {MIN_OVERLAP_PAIRS} queries answered in both cohorts")
    return missing


def judge(
    samples: Sequence[Sample],
    a: Analysis,
    treatment_share: float = 0.5,
    seed: int = 0,
    ops: Sequence[str] = ("recall", "remember"),
    overlap: bool = True,
) -> Verdict:
    rng = np.random.default_rng(seed)
    by = {(c, o): [s for s in samples if s.cohort == c and s.op == o] for c in ("control", "treatment") for o in ops}
    n = {c: sum(1 for s in samples if s.cohort == c) for c in ("control", "treatment")}
    metrics: list[MetricResult] = []
    for op in ops:
        c = np.array([s.latency_ms for s in by[("control", op)] if s.ok])
        t = np.array([s.latency_ms for s in by[("treatment", op)] if s.ok])
        metrics.append(judge_latency(f"{op}_latency", c, t, a, rng))
        metrics.append(
            judge_errors(
                f"{op}_errors",
                np.array([s.ok for s in by[("control", op)]]),
                np.array([s.ok for s in by[("treatment", op)]]),
                a,
            )
        )
    if overlap:
        metrics.append(judge_overlap(_pairs(samples), a, rng))
    # Sample-ratio mismatch is tested on the unit of randomization: distinct targeting keys when the
    # samples carry them (requests of one agent are not independent draws of the split).
    units = {c: {s.agent for s in samples if s.cohort == c and s.agent} for c in ("control", "treatment")}
    srm_n = {c: len(u) for c, u in units.items()} if all(units.values()) else n
    return decide(metrics, n, treatment_share, a, samples, srm_n)


def decide(
    metrics: list[MetricResult], n: dict, treatment_share: float, a: Analysis, samples=(), srm_n: dict | None = None
) -> Verdict:
    srm_n = srm_n or n
    srm = sample_ratio(srm_n["control"], srm_n["treatment"], treatment_share)
    reasons = [r for m in metrics for r in m.reasons]
    seq = sequential_guardrail(samples, a) if samples else {}
    if srm < a.srm_p:
        unit = "agents" if srm_n is not n else "requests"
        reasons.insert(
            0,
            f"sample-ratio mismatch: {srm_n['control']} control vs {srm_n['treatment']} treatment {unit} against a "
            f"configured treatment share of {treatment_share:.0%} (chi-square p={srm:.2g} < {a.srm_p}): "
            "comparison void",
        )
    classes = [m.classification for m in metrics]
    passed = sum(1 for c in classes if c in (PASS, LOW))
    score = round(100 * passed / len(classes), 1) if classes else 0.0
    verdict: Decision
    if srm < a.srm_p:
        verdict = "HOLD"
    elif CRITICAL in classes:
        verdict = "ROLLBACK"
    elif HIGH in classes or NODATA in classes or not classes:
        verdict = "HOLD"
    else:
        verdict = "PROMOTE"
    if verdict == "PROMOTE":
        reasons.append(f"all {len(classes)} checks pass (score {score})")
    return Verdict(verdict, score, reasons, metrics, srm, n, seq)


def sequential_guardrail(samples: Sequence[Sample], a: Analysis, op: str = "recall") -> dict:
    """Always-valid p-values of the latency (log) and error guardrails over all samples so far."""
    c = [s for s in samples if s.cohort == "control" and s.op == op]
    t = [s for s in samples if s.cohort == "treatment" and s.op == op]
    lat = msprt(
        np.log([max(s.latency_ms, 1e-6) for s in c if s.ok] or [1.0]),
        np.log([max(s.latency_ms, 1e-6) for s in t if s.ok] or [1.0]),
        tau=0.1,
    )
    err = msprt(
        np.array([0.0 if s.ok else 1.0 for s in c] or [0.0]),
        np.array([0.0 if s.ok else 1.0 for s in t] or [0.0]),
        tau=0.01,
    )
    return {"latency_p": lat, "errors_p": err, "alarm": bool(min(lat, err) < a.alpha)}


def judge_baseline(samples: Sequence[Sample], a: Analysis) -> Verdict:
    """Phase 0: the legacy path's figures under load; PROMOTE once there are enough samples."""
    rec = np.array([s.latency_ms for s in samples if s.op == "recall" and s.ok])
    n_all = sum(1 for s in samples if s.op in ("recall", "remember"))
    errors = sum(1 for s in samples if s.op in ("recall", "remember") and not s.ok)
    m = MetricResult("baseline", PASS, n_all, 0)
    if len(rec) < a.min_samples:
        m.classification = NODATA
        m.reasons.append(f"baseline: {len(rec)} successful recalls, {a.min_samples} needed")
    else:
        m.figures = {
            "recall_p50_ms": float(np.median(rec)),
            "recall_p95_ms": float(np.quantile(rec, 0.95)),
            "recall_p99_ms": float(np.quantile(rec, 0.99)),
            "error_rate": errors / max(n_all, 1),
            "requests": n_all,
        }
    verdict: Decision = "PROMOTE" if m.classification == PASS else "HOLD"
    reasons = m.reasons or [
        f"baseline captured: recall p50 {m.figures['recall_p50_ms']:.1f} ms, p99 "
        f"{m.figures['recall_p99_ms']:.1f} ms, error rate {m.figures['error_rate']:.3%} over {n_all} requests"
    ]
    return Verdict(verdict, 100.0 if verdict == "PROMOTE" else 0.0, reasons, [m], 1.0, {"control": n_all}, {})


def trend(times: Sequence[float], values: Sequence[float], confidence: float = 0.95) -> dict | None:
    """Least-squares slope of values over times (per unit of time, `scipy.stats.linregress`) with its
    one-sided lower and upper `confidence` bounds (Student t, n - 2 degrees of freedom); None below 3
    points or without two distinct times."""
    n = len(times)
    if n < 3 or len(set(times)) < 2:
        return None
    fit = stats.linregress(times, values)
    half = float(stats.t.ppf(confidence, n - 2)) * float(fit.stderr)
    slope = float(fit.slope)
    return {"slope": slope, "lower": slope - half, "upper": slope + half, "points": n}


def judge_soak(
    samples: Sequence[Sample],
    a: Analysis,
    error_rate_max: float,
    p99_target_ms: float,
    availability: float,
    rss_growth_max: float = 1.5,
) -> Verdict:
    """What a soak is for: does the path hold its SLO for the whole run with the production mix, and
    does nothing creep? Four checks (runbooks/load-testing/methodology.md):

    - error rate against the SLO's error budget (1 - `availability`: HOLD above it) and the abort
      trigger (`error_rate_max`: ROLLBACK above it);
    - recall p99 over the whole run against the plan's target (`p99_target_ms`);
    - latency trend: the run cut into `a.soak_windows` equal windows, the median recall latency of
      each, and the least-squares slope of its logarithm over the run with a one-sided 95 % upper
      bound counted in windows, not requests (requests close in time share the machine's load: the
      thirds of a 20 s soak behaved like ~130 independent requests, not 5 600). HOLD when the bound
      of the change over the run exceeds `a.soak_latency_margin` (non-inferiority);
    - resident memory: growth over the run (HOLD above `rss_growth_max`) and its slope with an
      interval, reported.
    A corpus that grows with the writes is not a regression while latency stays within these."""
    reqs = sorted((s for s in samples if s.op in ("recall", "remember")), key=lambda s: s.ts)
    metrics = []
    recalls = [s for s in reqs if s.ok and s.op == "recall"]

    lat = MetricResult("latency_trend", PASS, len(recalls), 0)
    if len(recalls) < 3 * a.soak_windows or reqs[-1].ts <= reqs[0].ts:
        lat.classification = NODATA
        lat.reasons.append(f"soak: {len(recalls)} recalls, {3 * a.soak_windows} needed for {a.soak_windows} windows")
    else:
        t0, span = reqs[0].ts, reqs[-1].ts - reqs[0].ts
        windows: list[list[float]] = [[] for _ in range(a.soak_windows)]
        for s in recalls:
            windows[min(a.soak_windows - 1, int((s.ts - t0) / span * a.soak_windows))].append(s.latency_ms)
        points = [((i + 0.5) / a.soak_windows, float(np.median(w))) for i, w in enumerate(windows) if len(w) >= 3]
        tr = trend([x for x, _ in points], [math.log(max(m, 1e-6)) for _, m in points])
        if tr is None:
            lat.classification = NODATA
            lat.reasons.append(f"soak: {len(points)} windows with recalls, 3 needed")
        else:
            change, upper = math.expm1(tr["slope"]), math.expm1(tr["upper"])
            lat.figures = {
                "windows": len(points),
                "window_medians_ms": [round(m, 3) for _, m in points],
                "change": change,
                "change_upper": upper,
                "margin": a.soak_latency_margin,
            }
            if upper > a.soak_latency_margin:
                lat.classification = HIGH
                lat.reasons.append(
                    f"soak: median recall latency changed {change:+.1%} over the run (upper 95 % bound "
                    f"{upper:+.1%} over {len(points)} windows, margin {a.soak_latency_margin:+.0%})"
                )
    metrics.append(lat)

    tail = MetricResult("recall_p99", PASS, len(recalls), 0)
    if not recalls:
        tail.classification = NODATA
        tail.reasons.append("soak: no successful recalls")
    else:
        p99 = float(np.percentile([s.latency_ms for s in recalls], 99))
        tail.figures = {"p99_ms": p99, "target_ms": p99_target_ms}
        if p99 > p99_target_ms:
            tail.classification = HIGH
            tail.reasons.append(f"soak: recall p99 {p99:.1f} ms above the SLO target {p99_target_ms:g} ms")
    metrics.append(tail)

    errs = sum(1 for s in reqs if not s.ok)
    budget = 1 - availability
    em = MetricResult(
        "error_rate", PASS, len(reqs), 0, figures={"errors": errs, "rate": errs / max(len(reqs), 1), "budget": budget}
    )
    if not reqs:
        em.classification = NODATA
        em.reasons.append("soak: no requests")
    elif errs / len(reqs) > error_rate_max:
        em.classification = CRITICAL
        em.reasons.append(f"soak: error rate {errs / len(reqs):.2%} above the abort trigger {error_rate_max:.1%}")
    elif errs / len(reqs) > budget:
        em.classification = HIGH
        em.reasons.append(f"soak: error rate {errs / len(reqs):.3%} above the SLO's error budget {budget:.3%}")
    metrics.append(em)

    rss = [(s.ts, mb) for s in samples if s.op == "probe" and (mb := s.rss_mb)]
    rm = MetricResult("resident_memory", PASS, len(rss), 0)
    if len(rss) < 3:
        rm.classification = NODATA
        rm.reasons.append(f"soak: {len(rss)} memory probes, 3 needed")
    else:
        growth = rss[-1][1] / max(rss[0][1], 1e-9)
        slope = trend([t / 60 for t, _ in rss], [mb for _, mb in rss])
        rm.figures = {"first_mb": rss[0][1], "last_mb": rss[-1][1], "growth": growth}
        if slope is not None:
            rm.figures |= {"slope_mb_per_min": slope["slope"], "slope_interval": [slope["lower"], slope["upper"]]}
        if growth > rss_growth_max:
            rm.classification = HIGH
            rm.reasons.append(f"soak: resident memory grew x{growth:.2f} ({rss[0][1]:.0f} -> {rss[-1][1]:.0f} MB)")
    metrics.append(rm)
    classes = [m.classification for m in metrics]
    verdict: Decision = (
        "ROLLBACK" if CRITICAL in classes else "HOLD" if (HIGH in classes or NODATA in classes) else "PROMOTE"
    )
    reasons = [r for m in metrics for r in m.reasons] or [
        "soak steady: within the SLO (errors, recall p99), no latency trend beyond the margin, no memory growth"
    ]
    return Verdict(
        verdict,
        round(100 * sum(c in (PASS, LOW) for c in classes) / len(classes), 1),
        reasons,
        metrics,
        1.0,
        {"control": len(reqs)},
        {},
    )
