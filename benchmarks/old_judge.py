"""The judge's latency test before the time-window change, kept for `make bench-judge` to print
side by side with today's (the bench's "old judge" columns). Not used by the product.

Per request, as if requests were independent: Mann-Whitney U and the Hodges-Lehmann shift of log
latency for the body, an upper-tail-weighted rank test and a bootstrapped p99 ratio for the tail;
one threshold (the old `p99_regression_max`, 5 %) for both, critical at 20 %.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from cutover.judge.checks import CRITICAL, HIGH, LOW, NODATA, PASS, MetricResult
from cutover.plan.model import Analysis

P99_REGRESSION_MAX, P99_REGRESSION_CRITICAL = 0.05, 0.20


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
    allowed, critical = 1 + P99_REGRESSION_MAX, 1 + P99_REGRESSION_CRITICAL
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
