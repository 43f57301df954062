"""The soak's verdict: errors against the SLO, p99 against its target, growth slopes and the latency
trend relative to the writes of the same windows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cutover.judge.checks import CRITICAL, HIGH, LOW, NODATA, PASS, MetricResult
from cutover.judge.evidence import Verdict as Decision
from cutover.judge.samples import Sample
from cutover.judge.stats import trend
from cutover.judge.verdict import Verdict
from cutover.plan.model import Analysis


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
