"""The judge: canary (treatment) versus control, from per-request samples, to a verdict.

Latency: control and treatment requests run at the same moments on the same machine, so the run is
cut into time windows and compared within them (`windowed_ratios`): the median ratio (each cohort's
middle half) and the tail ratio (each cohort's p95-p98 band) with one-sided bounds counted in
windows; the plan's allowed and critical increases for each. Errors: a one-sided Fisher exact test
(exact at small counts, so new errors against a zero baseline fail) with a Newcombe interval for the
difference. Recall quality: on complete answers (fewer than k records), the treatment's agreement
with control relative to control's agreement with itself (the noise floor); the ranking change
(top-k overlap, rank-biased overlap) is reported apart. Sample-ratio mismatch (chi-square against the
configured split, on agents when the samples carry them) voids the verdict. A cohort under the
plan's minimum samples is NoData, and NoData never passes. A sequential, always-valid guardrail
(mixture SPRT) is reported beside the verdict.

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
    open_fds: float | None = None  # soak probes: the gateway's open files
    outbox_depth: float | None = None  # soak probes: unmirrored writes
    wal_frames: float | None = None  # soak probes: frames in the gateway's SQLite write-ahead logs
    phase: str | None = None  # the phase of the flags that answered (the gateway's X-Cutover-Phase)


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
                            d.get("open_fds"),
                            d.get("outbox_depth"),
                            d.get("wal_frames"),
                            d.get("phase"),
                        )
                    )
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise SampleError(
                        f"{path}:{n}: not a sample ({exc}); need ts, cohort, op, latency_ms, ok"
                    ) from None
    return out


def samples_phase(samples: Iterable[Sample]) -> str:
    """The one phase the samples were answered in (their X-Cutover-Phase); SampleError when they
    carry none or several (the phase changed during the run: judge each part on its own)."""
    phases = sorted({s.phase for s in samples if s.phase})
    if len(phases) != 1:
        found = f"phases {', '.join(phases)}" if phases else "no phase (a gateway before X-Cutover-Phase)"
        raise SampleError(f"the samples carry {found}")
    return phases[0]


@dataclass
class MetricResult:
    name: str
    classification: str
    n_control: int
    n_treatment: int
    reasons: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


# -- statistics ------------------------------------------------------------------------------------
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


MIN_WINDOWS = 8  # time windows holding both cohorts before latency is judged
# The tail band: each cohort's requests from its p95 to its p98. Its geometric mean moves with a
# regression of the slowest 5 %, and it leaves out the slowest 2 %, whose few, widely spread values
# doubled the estimate's spread in a heavy tail (sd of the log ratio at 2 000 requests a cohort:
# 0.05 for p95-p98, 0.065 for p95-p99, 0.08 for the whole slowest 5 %; `make bench-judge`). The
# slowest 2 % are watched by the abort trigger on the p99 ratio and by the SLO's p99 target.
TAIL_BAND = (0.95, 0.98)
# The body: the middle half (p25 to p75). Its geometric mean moves as the median does under a shift
# and is steadier than the median itself (sd of the log ratio 13 % smaller here).
BODY_BAND = (0.25, 0.75)
TAIL_BAND_MIN = 50  # requests of the smaller cohort in the tail band for the tail's wider bound (5 alpha)


def time_windows(control_ts: np.ndarray, treatment_ts: np.ndarray, windows: int) -> tuple[np.ndarray, np.ndarray]:
    """The window (0 .. windows - 1) of each request: the run cut into `windows` equal spans of time."""
    both = np.concatenate([control_ts, treatment_ts])
    t0, span = float(both.min()), float(both.max() - both.min())
    if span <= 0:
        return np.zeros(len(control_ts), int), np.zeros(len(treatment_ts), int)

    def cut(ts: np.ndarray) -> np.ndarray:
        return np.minimum(windows - 1, ((ts - t0) / span * windows).astype(int))

    return cut(control_ts), cut(treatment_ts)


def _band_means(z: np.ndarray, win: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means of `z` over the body band and the tail band (`BODY_BAND`, `TAIL_BAND`), each request
    weighted by its window's weight (`win`: the window of each request): one figure per row of
    `weights` (rows x windows)."""
    order = np.argsort(z, kind="stable")
    v, w = z[order], weights[:, win[order]].astype(np.float64)
    cw = np.cumsum(w, axis=1)
    total = cw[:, -1:]
    out = []
    for lo, hi in (BODY_BAND, TAIL_BAND):
        bw = w * ((cw > lo * total) & (cw <= hi * total))
        out.append((bw * v).sum(axis=1) / np.maximum(bw.sum(axis=1), 1e-12))
    return out[0], out[1]


def windowed_ratios(
    control: np.ndarray, treatment: np.ndarray, control_win: np.ndarray, treatment_win: np.ndarray
) -> dict:
    """Treatment / control ratios of the median and of the tail band (p95 to p98, geometric mean),
    compared within time windows, with their standard errors counted in windows.

    Requests close in time share the machine's load (on a shared 2-core machine the median of half a
    second's requests moves about 10 % with nothing changed), so requests are not independent draws:
    the unit is the window. Each request's log latency is taken relative to its window's pooled
    median, which removes the load the two cohorts share in that window and keeps their difference
    (both are divided by the same figure). The ratios come from those relative latencies; their
    standard errors from a delete-one-window jackknife (each window left out with both cohorts'
    requests in it, so the pairing holds), which has windows - 1 degrees of freedom. Windows without
    both cohorts are left out."""
    lc, lt = np.log(np.maximum(control, 1e-6)), np.log(np.maximum(treatment, 1e-6))
    windows = int(max(control_win.max(initial=0), treatment_win.max(initial=0))) + 1
    has_c = np.bincount(control_win, minlength=windows) > 0
    has_t = np.bincount(treatment_win, minlength=windows) > 0
    used = np.flatnonzero(has_c & has_t)
    keep_c, keep_t = has_t[control_win], has_c[treatment_win]
    lc, lt, wc, wt = lc[keep_c], lt[keep_t], control_win[keep_c], treatment_win[keep_t]
    centre = np.zeros(windows)
    for w in used:
        centre[w] = np.median(np.concatenate([lc[wc == w], lt[wt == w]]))
    zc, zt = lc - centre[wc], lt - centre[wt]
    # row 0: every window; row i: all but the i-th used window
    weights = np.ones((len(used) + 1, windows), np.float32)
    weights[np.arange(1, len(used) + 1), used] = 0
    mc, tc = _band_means(zc, wc, weights)
    mt, tt = _band_means(zt, wt, weights)
    out: dict = {
        "windows": len(used),
        "windows_total": windows,
        "requests_left_out": int((~keep_c).sum() + (~keep_t).sum()),
    }
    for name, diff in (("median", mt - mc), ("tail", tt - tc)):
        leave = diff[1:]
        n = len(leave)
        se = math.sqrt((n - 1) / n * float(((leave - leave.mean()) ** 2).sum())) if n > 1 else math.inf
        out[name] = {"log_ratio": float(diff[0]), "se": se, "df": max(n - 1, 1)}
    return out


def bound(effect: dict, confidence: float, upper: bool = False) -> float:
    """One-sided bound of a ratio from `windowed_ratios` (Student t on its windows)."""
    t = float(stats.t.ppf(confidence, effect["df"])) * effect["se"]
    return math.exp(effect["log_ratio"] + (t if upper else -t))


# -- metrics ----------------------------------------------------------------------------------------


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
    pairs: list[tuple[list, list]],
    a: Analysis,
    rng: np.random.Generator,
    min_pairs: int = MIN_OVERLAP_PAIRS,
    floor_pairs: list[tuple[list, list]] | None = None,
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

    def jaccard(c: list, t: list) -> float:
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


def complete_answers(pairs: list[tuple[list, list]], k: int) -> list[tuple[list, list]]:
    """The pairs whose first answer is complete (fewer than k records: every match), not both empty."""
    return [(c, t) for c, t in pairs if len(c) < k and (c or t)]


def _answer_pairs(samples: Sequence[Sample]) -> tuple[list[tuple[list, list]], list[tuple[list, list]]]:
    """Answers to the same query, in time order: (control, treatment) for each treatment answer with
    the latest control answer before it, and (control, control) for each control answer with the one
    before it (the noise floor)."""
    last: dict[str, list] = {}
    pairs, floor = [], []
    for s in sorted(samples, key=lambda s: s.ts):
        if not (s.op == "recall" and s.ok and s.query and s.ids is not None):
            continue
        prev = last.get(s.query)
        if s.cohort == "treatment" and prev is not None:
            pairs.append((prev, s.ids))
        elif s.cohort == "control":
            if prev is not None:
                floor.append((prev, s.ids))
            last[s.query] = s.ids
    return pairs, floor


def missing_samples(samples: Sequence[Sample], a: Analysis, ops: Sequence[str] = ("recall", "remember")) -> list[str]:
    """What a verdict still lacks: each cohort and operation below `a.min_samples` successful
    requests, and too few queries answered in both cohorts; empty when `judge` has enough."""
    missing = []
    for op in ops:
        for cohort in ("control", "treatment"):
            n = sum(1 for s in samples if s.cohort == cohort and s.op == op and s.ok)
            if n < a.min_samples:
                missing.append(f"{op} {cohort}: {n} of {a.min_samples}")
    pairs = len(complete_answers(_answer_pairs(samples)[0], a.top_k))
    if pairs < MIN_OVERLAP_PAIRS:
        missing.append(
            f"recall overlap: {pairs} of {MIN_OVERLAP_PAIRS} complete answers to queries answered in both cohorts"
        )
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
        c = [s for s in by[("control", op)] if s.ok]
        t = [s for s in by[("treatment", op)] if s.ok]
        metrics.append(
            judge_latency(
                f"{op}_latency",
                np.array([s.latency_ms for s in c]),
                np.array([s.latency_ms for s in t]),
                a,
                np.array([s.ts for s in c]),
                np.array([s.ts for s in t]),
                ops=len(ops),
            )
        )
        metrics.append(
            judge_errors(
                f"{op}_errors",
                np.array([s.ok for s in by[("control", op)]]),
                np.array([s.ok for s in by[("treatment", op)]]),
                a,
            )
        )
    if overlap:
        pairs, floor = _answer_pairs(samples)
        metrics.append(judge_overlap(pairs, a, rng, floor_pairs=floor))
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
    if len(set(values)) == 1:  # a flat line: slope 0, known exactly (linregress would give nan)
        return {"slope": 0.0, "lower": 0.0, "upper": 0.0, "points": n}
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
      each relative to the median write latency of the same window (the load of the machine, which
      both share, cancels; reads only: the recall medians themselves), and the least-squares slope
      of its logarithm over the run with a one-sided 95 % upper bound counted in windows, not
      requests. HOLD when the bound of the change over the run exceeds `a.soak_latency_margin`
      (non-inferiority). The absolute trend is reported beside it;
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
        w_n = a.soak_windows
        by: dict[str, list[list[float]]] = {op: [[] for _ in range(w_n)] for op in ("recall", "remember")}
        for s in reqs:
            if s.ok:
                by[s.op][min(w_n - 1, int((s.ts - t0) / span * w_n))].append(s.latency_ms)
        x = [(i + 0.5) / w_n for i in range(w_n)]
        rec = [float(np.median(w)) if len(w) >= 3 else None for w in by["recall"]]
        ref = [float(np.median(w)) if len(w) >= 3 else None for w in by["remember"]]
        absolute = trend([t for t, m in zip(x, rec, strict=True) if m], [math.log(m) for m in rec if m])
        # recall relative to the writes of the same window: both share the machine's load, which a
        # short soak on a shared machine swings by +/-30-50 % over seconds; a creep of the read path
        # (a corpus or index that slows recalls) stays
        pairs = [(t, math.log(m) - math.log(r)) for t, m, r in zip(x, rec, ref, strict=True) if m and r]
        relative = trend([t for t, _ in pairs], [v for _, v in pairs]) if len(pairs) >= w_n // 2 else None
        tr, reference = (relative, "remember") if relative is not None else (absolute, None)
        if tr is None:
            lat.classification = NODATA
            lat.reasons.append(f"soak: {sum(1 for m in rec if m)} windows with recalls, 3 needed")
        else:
            change, upper = math.expm1(tr["slope"]), math.expm1(tr["upper"])
            lat.figures = {
                "windows": tr["points"],
                "window_medians_ms": [round(m, 3) if m else None for m in rec],
                "reference": reference,
                "change": change,
                "change_upper": upper,
                "margin": a.soak_latency_margin,
            }
            if absolute is not None:
                lat.figures |= {
                    "absolute_change": math.expm1(absolute["slope"]),
                    "absolute_change_upper": math.expm1(absolute["upper"]),
                }
            if upper > a.soak_latency_margin:
                against = " relative to the writes of the same windows" if reference else ""
                lat.classification = HIGH
                lat.reasons.append(
                    f"soak: median recall latency{against} changed {change:+.1%} over the run (upper 95 % "
                    f"bound {upper:+.1%} over {tr['points']} windows, margin {a.soak_latency_margin:+.0%})"
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
        # open files, the mirror outbox and the WAL: their slope with an interval, reported (a leak shows as a
        # slope whose interval is above zero; what a slope means depends on the run, so it gates nothing)
        for key, unit in (
            ("open_fds", "open_fds_per_min"),
            ("outbox_depth", "outbox_depth_per_min"),
            ("wal_frames", "wal_frames_per_min"),
        ):
            pts = [(s.ts / 60, v) for s in samples if s.op == "probe" and (v := getattr(s, key)) is not None]
            fit = trend([t for t, _ in pts], [v for _, v in pts])
            if fit is not None:
                rm.figures[unit] = {"slope": fit["slope"], "interval": [fit["lower"], fit["upper"]], "last": pts[-1][1]}
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
