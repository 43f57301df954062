"""The canary judge under time-correlated noise like this machine's (a load factor shared by both
cohorts that drifts and jumps, benchmarks/noise.py, calibrated on rehearsal runs here), both ways:
A/A rarely holds and never rolls back, a +10 % median or a +30 % slowest 5 % holds; and recall
quality judged on complete answers against legacy's own agreement, so a ranking change at full
parity passes and missing records do not. The bench (`make bench-judge`) measures the same at
1 000 runs with the targets; these runs are fewer and the bounds looser, so they are stable."""

from __future__ import annotations

import numpy as np

from benchmarks.noise import load_factor
from cutover.judge.checks import judge_latency
from cutover.judge.samples import Sample
from cutover.judge.verdict import judge
from cutover.plan.model import Analysis

A = Analysis()


def cohorts(rng, median=1.0, slowest=1.0, n=2000, seconds=10.0, shared=True):
    ts_c, ts_t = np.sort(rng.uniform(0, seconds, n)), np.sort(rng.uniform(0, seconds, n))
    c, t = rng.lognormal(np.log(40), 0.45, n), rng.lognormal(np.log(40), 0.45, n) * median
    if slowest != 1.0:
        t = np.where(t > np.quantile(t, 0.95), t * slowest, t)
    if shared:
        load = load_factor(rng, seconds)
        c, t = c * load(ts_c), t * load(ts_t)
    return c, t, ts_c, ts_t


def classes(seed, runs=150, **kw):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        c, t, ts_c, ts_t = cohorts(rng, **kw)
        out.append(judge_latency("recall_latency", c, t, A, ts_c, ts_t).classification)
    return out


def test_aa_under_shared_load_rarely_holds_and_never_rolls_back():
    out = classes(1)
    assert out.count("Critical") == 0
    assert sum(c == "High" for c in out) <= 4, {c: out.count(c) for c in set(out)}  # target <= 2 %: 3 of 150


def test_a_ten_percent_median_regression_holds_under_shared_load():
    out = classes(2, median=1.10)
    assert sum(c in ("High", "Critical") for c in out) >= 0.9 * len(out), {c: out.count(c) for c in set(out)}


def test_a_thirty_percent_slower_slowest_five_percent_holds_under_shared_load():
    out = classes(3, slowest=1.30)
    assert sum(c in ("High", "Critical") for c in out) >= 0.88 * len(out), {c: out.count(c) for c in set(out)}


def test_a_large_regression_rolls_back():
    rng = np.random.default_rng(4)
    c, t, ts_c, ts_t = cohorts(rng, median=1.5)
    m = judge_latency("recall_latency", c, t, A, ts_c, ts_t)
    assert m.classification == "Critical" and m.figures["median_ratio_interval"][0] > 1 + A.median_regression_critical


def test_the_windows_cancel_the_shared_load():
    """Per-request intervals are too narrow when the load is shared; within windows they are not:
    the spread of the median ratio over A/A runs matches the interval the judge states."""
    rng = np.random.default_rng(5)
    ratios, widths = [], []
    for _ in range(60):
        c, t, ts_c, ts_t = cohorts(rng)
        f = judge_latency("recall_latency", c, t, A, ts_c, ts_t).figures
        ratios.append(np.log(f["median_ratio"]))
        lo, hi = f["median_ratio_interval"]
        widths.append((np.log(hi) - np.log(lo)) / 2)
    # a two-sided 98 % interval is about 2.5 standard errors each side (t, 19 df)
    stated = float(np.median(widths)) / 2.54
    assert 0.6 < float(np.std(ratios)) / stated < 1.6


def answers(rng, held_share=1.0, n=600):
    """Recalls to 60 queries over 10 s. Half the queries match 3 records (complete answers, fewer
    than k); the other half match 30 and each store returns its own top 10 (ranked differently by
    design: the treatment's picks overlap control's by about a third)."""
    out = []
    for cohort in ("control", "treatment"):
        for ts in np.sort(rng.uniform(0, 10, n)):
            qi = int(rng.integers(60))
            if qi % 2:
                ids = [f"q{qi}-{j}" for j in range(3)]
                if cohort == "treatment":
                    ids = [i for i in ids if rng.random() < held_share]
            else:
                pool = [f"q{qi}-{j}" for j in range(30)]
                ids = pool[:10] if cohort == "control" else pool[7:17]
            lat = float(rng.lognormal(np.log(5), 0.3))
            out.append(Sample(float(ts), cohort, "recall", lat, True, 200, ids, f"team|q{qi}", agent=f"a{ts}"))
    return out


def test_a_ranking_change_at_full_parity_passes_recall_quality():
    v = judge(answers(np.random.default_rng(6)), Analysis(min_samples=100), 0.5, ops=("recall",))
    m = next(m for m in v.metrics if m.name == "recall_overlap")
    assert m.classification == "Pass", m.reasons
    assert m.figures["relative_agreement"] > 0.99 and m.figures["topk_overlap"] < 0.75  # ranking change reported


def test_missing_records_fail_recall_quality():
    v = judge(answers(np.random.default_rng(7), held_share=0.67), Analysis(min_samples=100), 0.5, ops=("recall",))
    m = next(m for m in v.metrics if m.name == "recall_overlap")
    assert m.classification in ("High", "Critical") and v.verdict != "PROMOTE", m.figures
