"""The judge's statistics: latency ratios within time windows with a delete-one-window jackknife,
Newcombe's interval for a difference of proportions, the mixture SPRT, a trend with its interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def newcombe(e1: int, n1: int, e2: int, n2: int, alpha: float) -> tuple[float, float]:
    """Interval for p2 - p1 from two Wilson intervals (Newcombe's method 10)."""
    z = stats.norm.ppf(1 - alpha / 2)

    def wilson(e: int, n: int) -> tuple[float, float]:
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
        out: np.ndarray = np.minimum(windows - 1, ((ts - t0) / span * windows).astype(int))
        return out

    return cut(control_ts), cut(treatment_ts)


def band_means(z: np.ndarray, win: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
) -> dict[str, Any]:
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
    mc, tc = band_means(zc, wc, weights)
    mt, tt = band_means(zt, wt, weights)
    out: dict[str, Any] = {
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


def bound(effect: dict[str, Any], confidence: float, upper: bool = False) -> float:
    """One-sided bound of a ratio from `windowed_ratios` (Student t on its windows)."""
    t = float(stats.t.ppf(confidence, effect["df"])) * effect["se"]
    return math.exp(effect["log_ratio"] + (t if upper else -t))


def trend(times: Sequence[float], values: Sequence[float], confidence: float = 0.95) -> dict[str, Any] | None:
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
