"""One check each: latency (median and tail), errors, recall quality, the sample ratio; each gives a
classified MetricResult with its reasons and figures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from cutover.judge.drift import rbo
from cutover.judge.samples import complete_answers
from cutover.judge.stats import MIN_WINDOWS, TAIL_BAND, TAIL_BAND_MIN, bound, newcombe, time_windows, windowed_ratios
from cutover.plan.model import Analysis

PASS, HIGH, LOW, NODATA, CRITICAL = "Pass", "High", "Low", "NoData", "Critical"

MIN_OVERLAP_PAIRS = 20  # queries answered in both cohorts before recall quality is judged


@dataclass
class MetricResult:
    name: str
    classification: str
    n_control: int
    n_treatment: int
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def judge_latency(
    name: str,
    control: np.ndarray,
    treatment: np.ndarray,
    a: Analysis,
    control_ts: np.ndarray | None = None,
    treatment_ts: np.ndarray | None = None,
    ops: int = 1,
) -> MetricResult:
    """Treatment against control latency, compared within `a.judge_windows` time windows
    (`windowed_ratios`): the median ratio against `a.median_regression_max` and `_critical`, the
    tail-band (p95-p98) ratio against `a.tail_regression_max` and `_critical`. The median's one-sided
    bound is at 1 - alpha / `ops` (Bonferroni over the operations one verdict judges); the tail's at
    1 - 5 alpha / `ops` (at most 0.05) when each cohort has at least `TAIL_BAND_MIN` requests in the
    band, else at 1 - alpha / `ops` like the median: a band of a few requests gives a rough estimate
    whose interval the t law states too narrowly. Without request times every request is its own
    point in time, in the order given."""
    r = MetricResult(name, PASS, len(control), len(treatment))
    if len(control) < a.min_samples or len(treatment) < a.min_samples:
        r.classification = NODATA
        r.reasons.append(
            f"{name}: {len(control)} control and {len(treatment)} treatment samples, {a.min_samples} needed per cohort"
        )
        return r
    if control_ts is None or treatment_ts is None:
        control_ts, treatment_ts = np.arange(len(control), dtype=float), np.arange(len(treatment), dtype=float)
        control_ts = control_ts * (len(treatment) / max(len(control), 1))
    wc, wt = time_windows(np.asarray(control_ts, float), np.asarray(treatment_ts, float), a.judge_windows)
    w = windowed_ratios(control, treatment, wc, wt)
    if w["windows"] < MIN_WINDOWS:
        r.classification = NODATA
        r.reasons.append(
            f"{name}: {w['windows']} of {a.judge_windows} time windows hold both cohorts, {MIN_WINDOWS} needed"
        )
        return r
    med, tail = math.exp(w["median"]["log_ratio"]), math.exp(w["tail"]["log_ratio"])
    # one-sided bounds: "worse" is the only direction that holds or rolls back
    each = a.alpha / max(ops, 1)
    band = int(min(len(control), len(treatment)) * (TAIL_BAND[1] - TAIL_BAND[0]))
    tail_each = min(0.05, 5 * each) if band >= TAIL_BAND_MIN else each
    med_lo, med_hi = bound(w["median"], 1 - each), bound(w["median"], 1 - each, upper=True)
    tail_lo, tail_hi = bound(w["tail"], 1 - tail_each), bound(w["tail"], 1 - tail_each, upper=True)
    r.figures = {
        "windows": w["windows"],
        "windows_total": w["windows_total"],
        "requests_left_out": w["requests_left_out"],
        "median_ratio": med,
        "median_ratio_interval": [med_lo, med_hi],
        "tail_ratio": tail,
        "tail_ratio_interval": [tail_lo, tail_hi],
        "bound_confidence": {"median": 1 - each, "tail": 1 - tail_each},
        "tail_band_requests": band,
        "p50_control_ms": float(np.median(control)),
        "p50_treatment_ms": float(np.median(treatment)),
        "p99_control_ms": float(np.quantile(control, 0.99)),
        "p99_treatment_ms": float(np.quantile(treatment, 0.99)),
    }
    body_allowed, body_critical = 1 + a.median_regression_max, 1 + a.median_regression_critical
    tail_allowed, tail_critical = 1 + a.tail_regression_max, 1 + a.tail_regression_critical
    # worse: the bound says slower (above no change) and the estimate is beyond what is allowed;
    # critical: even the bound is beyond the critical effect
    body_worse = med_lo > 1 and med > body_allowed
    tail_worse = tail_lo > 1 and tail > tail_allowed
    where = f"over {w['windows']} time windows"
    said = f"median x{med:.3f} (bound {med_lo:.3f}), tail p95-p98 x{tail:.3f} (bound {tail_lo:.3f}) {where}"
    if med_lo > body_critical or tail_lo > tail_critical:
        r.classification = CRITICAL
        r.reasons.append(
            f"{name}: treatment critically slower: {said}; critical median x{body_critical:.2f}, "
            f"tail x{tail_critical:.2f}"
        )
    elif body_worse or tail_worse:
        r.classification = HIGH
        r.reasons.append(
            f"{name}: treatment slower than allowed: {said}; allowed median x{body_allowed:.2f}, "
            f"tail x{tail_allowed:.2f}"
        )
    elif med_hi < 1:
        r.classification = LOW
        r.reasons.append(f"{name}: treatment faster (median x{med:.3f} {where})")
    return r


def judge_errors(name: str, control_ok: np.ndarray, treatment_ok: np.ndarray, a: Analysis) -> MetricResult:
    n1, n2 = len(control_ok), len(treatment_ok)
    return judge_error_counts(name, int(n1 - control_ok.sum()), n1, int(n2 - treatment_ok.sum()), n2, a)


def judge_error_counts(name: str, e1: int, n1: int, e2: int, n2: int, a: Analysis) -> MetricResult:
    """Errors `e1` of `n1` control requests against `e2` of `n2` treatment requests: per-request
    samples and binned counters (`cutover.judge.binned`) alike, since error counts are exact."""
    r = MetricResult(name, PASS, n1, n2)
    if n1 < a.min_samples or n2 < a.min_samples:
        r.classification = NODATA
        r.reasons.append(f"{name}: {n1} control and {n2} treatment samples, {a.min_samples} needed per cohort")
        return r
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
    pairs: list[tuple[list[Any], list[Any]]],
    a: Analysis,
    rng: np.random.Generator,
    min_pairs: int = MIN_OVERLAP_PAIRS,
    floor_pairs: list[tuple[list[Any], list[Any]]] | None = None,
) -> MetricResult:
    """Do the treatment's answers hold what control's hold? Judged only on complete answers: control
    returned fewer than k records, so it returned every match, and the order cannot matter. There the
    treatment should return the same set (Jaccard of the two sets). Answers change between two reads
    as writes land, so the same measure between two control answers to the same query is the noise
    floor (legacy compared with itself, as Diffy does with a second primary); the check is the
    treatment's agreement relative to that floor, against `a.topk_overlap_min`. Where control
    returned k records the two stores may rank different records into the top k by design (the
    ranking change, reported as top-k overlap and RBO, gates nothing)."""
    k = a.top_k
    r = MetricResult("recall_overlap", PASS, len(pairs), len(pairs))

    def jaccard(c: list[Any], t: list[Any]) -> float:
        sc, st = set(c), set(t)
        return len(sc & st) / len(sc | st) if sc | st else 1.0

    full, floor = complete_answers(pairs, k), complete_answers(floor_pairs or [], k)
    overlaps = [len(set(c[:k]) & set(t[:k])) / max(1, min(k, max(len(c[:k]), len(t[:k])))) for c, t in pairs if c or t]
    r.figures = {
        "pairs": len(pairs),
        "complete_pairs": len(full),
        "floor_pairs": len(floor),
        "topk_overlap": float(np.mean(overlaps)) if overlaps else None,
        "rbo": float(np.mean([rbo(c, t, a.rbo_p, k) for c, t in pairs])) if pairs else None,
        "floor": a.topk_overlap_min,
    }
    if len(full) < min_pairs:
        r.classification = NODATA
        r.reasons.append(
            f"recall quality: {len(full)} complete answers (fewer than {k} records) to queries answered in both "
            f"cohorts, {min_pairs} needed"
        )
        return r
    agree = np.array([jaccard(c, t) for c, t in full])
    base = np.array([jaccard(c, t) for c, t in floor]) if len(floor) >= min_pairs else np.ones(1)
    ratio = float(agree.mean() / max(base.mean(), 1e-9))
    boot_base = np.maximum(rng.choice(base, (400, len(base))).mean(axis=1), 1e-9)
    boots = rng.choice(agree, (400, len(agree))).mean(axis=1) / boot_base
    lo, hi = (float(x) for x in np.quantile(boots, [a.alpha / 2, 1 - a.alpha / 2]))
    r.figures |= {
        "agreement": float(agree.mean()),
        "noise_floor": float(base.mean()) if len(floor) >= min_pairs else None,
        "relative_agreement": ratio,
        "relative_agreement_ci": [lo, hi],
    }
    said = (
        f"complete answers agree {agree.mean():.3f} (legacy with itself {base.mean():.3f}): relative {ratio:.3f} "
        f"[{lo:.3f}, {hi:.3f}] over {len(full)} queries"
    )
    if hi < a.topk_overlap_min:
        r.classification = CRITICAL
        r.reasons.append(f"recall quality: the treatment misses what control holds: {said}, floor {a.topk_overlap_min}")
    elif ratio < a.topk_overlap_min:
        r.classification = HIGH
        r.reasons.append(f"recall quality: {said}, under the floor {a.topk_overlap_min}")
    return r


def sample_ratio(n_control: int, n_treatment: int, treatment_share: float) -> float:
    """p-value of the observed split against the configured one."""
    total = n_control + n_treatment
    if total == 0 or not 0 < treatment_share < 1:
        return 1.0
    expected = [total * (1 - treatment_share), total * treatment_share]
    return float(stats.chisquare([n_control, n_treatment], expected).pvalue)
