"""The binned judge (`cutover.judge.binned`) on constructed bucket counts with known answers: its
statistics against scipy on the expanded data, its verdicts both ways, its false-alarm rate over A/A
draws, and its power beside the per-request judge's on the same draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cutover.judge.binned import (
    NOT_APPLICABLE,
    BinnedData,
    Cell,
    Histogram,
    homogeneity_p,
    judge_binned,
    judge_binned_latency,
    judge_shadow_overlap,
    rank_test,
)
from cutover.judge.checks import judge_latency
from cutover.plan.metrics import latency_buckets
from cutover.plan.model import Analysis, load_plan

from .conftest import ROOT

PLAN = load_plan(ROOT / "rollout.yaml")
BOUNDS = latency_buckets(PLAN)
A = PLAN.effective("ramp-50").analysis


def draw(rng, n, scale=1.0, median_s=0.040, sigma=0.45):
    return rng.lognormal(math.log(median_s), sigma, n) * scale


def data(rng, n=3000, t_scale=1.0, c_err=0.002, t_err=0.002, drift=None):
    """Binned recall and remember traffic of both cohorts, as the gateway's histograms count it."""
    cells = {}
    for cohort, scale, err in (("control", 1.0, c_err), ("treatment", t_scale, t_err)):
        for op, median in (("recall", 0.040), ("remember", 0.015)):
            errors = int(rng.binomial(n, err))
            cells[(cohort, op)] = Cell(n - errors, errors, Histogram.from_values(BOUNDS, draw(rng, n, scale, median)))
    return BinnedData(cells, drift or {}, "constructed")


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def test_histogram_reads_cumulative_buckets_and_interpolates_as_histogram_quantile():
    h = Histogram.from_cumulative({0.1: 10, 0.2: 30, 0.4: 40, math.inf: 40})
    assert h.counts == (10, 20, 10, 0) and h.n == 40
    assert h.quantile(0.5) == pytest.approx(0.15)  # rank 20: halfway through (0.1, 0.2]
    assert h.quantile(0.125) == pytest.approx(0.05 / 1)  # rank 5 of the first bucket, from 0
    top = Histogram.from_cumulative({0.1: 1, math.inf: 10})
    assert top.quantile(0.99) == 0.1  # the +Inf bucket answers the highest finite bound
    # extrapolated counts below the bucket before them count 0, never negative
    assert Histogram.from_cumulative({0.1: 10.4, 0.2: 9.8, math.inf: 12.2}).counts == (10, 0, 2)
    with pytest.raises(ValueError, match=r"\+Inf"):
        Histogram.from_cumulative({0.1: 3})
    assert Histogram.from_values((0.1, 0.2), [0.1, 0.15, 0.2, 0.3]).counts == (1, 2, 1)  # upper bounds inclusive
    assert Histogram((0.1, 0.2, 0.4), (1, 2, 3, 4)).coarsen((0.2,)).counts == (3, 7)


def test_the_quantile_interval_covers_the_true_quantile_at_its_confidence(rng):
    true_p50, true_p99 = 0.040, 0.040 * math.exp(0.45 * stats.norm.ppf(0.99))
    missed = {"p50": 0, "p99": 0}
    for _ in range(200):
        h = Histogram.from_values(BOUNDS, draw(rng, 2000))
        lo, hi = h.quantile_interval(0.5, 0.99)
        missed["p50"] += not lo <= true_p50 <= hi
        lo, hi = h.quantile_interval(0.99, 0.95)
        missed["p99"] += not lo <= true_p99 <= hi
    # each side one-sided at its confidence: at most 2 % and 10 % misses, and bucket edges widen them
    assert missed["p50"] <= 4 and missed["p99"] <= 20, missed
    lo, hi = Histogram.from_values(BOUNDS, draw(rng, 2000)).quantile_interval(0.5, 0.99)
    assert (lo, hi) == (0.025, 0.05)  # a 40 ms median: the bucket that holds it


def test_the_rank_test_on_buckets_is_mann_whitney_with_ties(rng):
    c = Histogram.from_values(BOUNDS, draw(rng, 800))
    t = Histogram.from_values(BOUNDS, draw(rng, 700, 1.2))
    ours = rank_test(c, t)
    expand = [np.repeat(np.arange(len(h.counts)), h.counts) for h in (c, t)]
    ref = stats.mannwhitneyu(expand[1], expand[0], alternative="greater", use_continuity=False, method="asymptotic")
    assert ours["p_slower"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert ours["prob_slower"] == pytest.approx(ref.statistic / (800 * 700))
    assert ours["p_slower"] < 1e-6 and ours["p_faster"] > 0.99
    same = Histogram((0.1,), (50, 0))
    assert rank_test(same, same) == {"prob_slower": 0.5, "p_slower": 1.0, "p_faster": 1.0}
    assert homogeneity_p(c, t) < 1e-6 and homogeneity_p(c, c) == pytest.approx(1.0)


def test_identical_cohorts_promote_and_the_source_is_stated(rng):
    v = judge_binned(data(rng), A, 0.5)
    assert v.verdict == "PROMOTE", v.reasons
    assert v.source == "constructed" and v.as_dict()["source"] == "constructed"
    overlap = next(m for m in v.metrics if m.name == "recall_overlap")
    assert overlap.classification == NOT_APPLICABLE and any("not applicable" in r for r in v.reasons)
    lat = next(m for m in v.metrics if m.name == "recall_latency")
    assert 0.9 < lat.figures["median_ratio"] < 1.1 and lat.figures["p50_control_bucket_ms"] == [25.0, 50.0]


def test_a_30_percent_slower_treatment_holds_and_a_three_times_slower_one_rolls_back(rng):
    v = judge_binned(data(rng, t_scale=1.3), A, 0.5)
    lat = next(m for m in v.metrics if m.name == "recall_latency")
    assert v.verdict == "HOLD" and lat.classification == "High", v.reasons
    assert 1.2 < lat.figures["median_ratio"] < 1.4
    # within one bucket width the bound cannot say "certainly 20 % slower": no ROLLBACK at +30 %
    assert lat.figures["median_ratio_interval"][0] <= 1 + A.median_regression_critical
    v = judge_binned(data(rng, t_scale=3.0), A, 0.5)
    assert v.verdict == "ROLLBACK" and any("beyond the bucket bounds" in r for r in v.reasons), v.reasons


def test_a_faster_treatment_is_low_and_still_promotes(rng):
    v = judge_binned(data(rng, t_scale=0.7), A, 0.5)
    assert v.verdict == "PROMOTE" and {m.classification for m in v.metrics if "latency" in m.name} == {"Low"}


def test_raised_errors_roll_back(rng):
    v = judge_binned(data(rng, t_err=0.03), A, 0.5)
    err = next(m for m in v.metrics if m.name == "recall_errors")
    assert err.classification == "Critical" and v.verdict == "ROLLBACK", v.reasons
    assert err.figures["difference_ci"][0] > A.error_rate_increase_max


def test_a_window_with_too_few_requests_holds_saying_why(rng):
    v = judge_binned(data(rng, n=600), A, 0.5)
    assert v.verdict == "HOLD"
    assert any(f"successful requests in the window, {A.min_samples} needed per cohort" in r for r in v.reasons)
    empty = judge_binned(BinnedData({}, {}, "nothing"), A, 0.5)
    assert empty.verdict == "HOLD" and all(m.classification in ("NoData", NOT_APPLICABLE) for m in empty.metrics)


def test_an_imbalanced_split_voids_the_binned_verdict(rng):
    v = judge_binned(data(rng), A, 0.2)
    assert v.verdict == "HOLD" and "sample-ratio mismatch" in v.reasons[0]


def test_recall_quality_from_shadow_reads_both_ways():
    good = judge_shadow_overlap({"parity": (2.0, 200), "jaccard": (60.0, 200), "rbo": (80.0, 200)}, A)
    assert good.classification == "Pass" and good.figures["agreement"] == pytest.approx(0.99)
    assert good.figures["topk_overlap"] == pytest.approx(0.7) and good.figures["rbo"] == pytest.approx(0.6)
    low = judge_shadow_overlap({"parity": (0.2 * 30, 30)}, A)  # agreement 0.8, bound above the floor
    assert low.classification == "High"
    bad = judge_shadow_overlap({"parity": (0.5 * 400, 400)}, A)
    assert bad.classification == "Critical"
    assert judge_shadow_overlap({"parity": (0.0, 5)}, A).classification == NOT_APPLICABLE


def test_aa_false_rollback_rate_0_of_200_seeded_draws_stays_under_alpha_1_percent():
    rng = np.random.default_rng(2024)
    runs = 200
    verdicts = [judge_binned(data(rng, n=2000), A, 0.5).verdict for _ in range(runs)]
    rollback, not_promote = verdicts.count("ROLLBACK") / runs, (runs - verdicts.count("PROMOTE")) / runs
    # measured: ROLLBACK 0 of 200, not PROMOTE 8 of 200 (4 %): 7 error checks High (the per-request
    # Fisher rule at 5 alpha, two operations) and 2 latency checks High of 400
    assert rollback < A.alpha, f"A/A false ROLLBACK {rollback:.1%} over {runs} draws, alpha {A.alpha}"
    assert not_promote <= 0.05, f"A/A not PROMOTE {not_promote:.1%} over {runs} draws"


def power(scale: float, n: int, runs: int, seed: int, tail: float | None = None) -> dict[str, float]:
    """Share of `runs` draws each judge finds slower (High or Critical), binned and per-request from
    the same draws (independent requests; the per-request judge's windows are then request order)."""
    rng = np.random.default_rng(seed)
    a = Analysis()
    found = {"binned": 0, "per_request": 0, "binned_rollback": 0, "per_request_rollback": 0}
    for _ in range(runs):
        c, t = draw(rng, n), draw(rng, n, scale)
        if tail:
            t = np.where(t > np.quantile(t, 0.95), t * tail, t)
        b = judge_binned_latency("x", Histogram.from_values(BOUNDS, c), Histogram.from_values(BOUNDS, t), (n, n), a, 2)
        r = judge_latency("x", c * 1000, t * 1000, a, ops=2)
        found["binned"] += b.classification in ("High", "Critical")
        found["per_request"] += r.classification in ("High", "Critical")
        found["binned_rollback"] += b.classification == "Critical"
        found["per_request_rollback"] += r.classification == "Critical"
    return {k: v / runs for k, v in found.items()}


def test_binned_power_beside_per_request_on_the_same_draws():
    """The figures of the methodology page (binned data): 100 draws a case at 2 000 requests a cohort."""
    aa = power(1.0, 2000, 100, seed=1)
    assert aa["binned"] <= 0.05 and aa["binned_rollback"] == 0, aa
    plus10 = power(1.10, 2000, 100, seed=2)
    assert plus10["binned"] >= 0.9 and plus10["per_request"] >= 0.9, plus10
    plus30 = power(1.30, 2000, 100, seed=3)
    # binned data finds +30 % as surely, but cannot be certain it is beyond +20 % within a bucket
    assert plus30["binned"] == 1.0 and plus30["binned_rollback"] == 0, plus30
    assert plus30["per_request_rollback"] >= 0.9, plus30
    # the slowest 5 % made 30 % slower: the tail share above the pooled p95's bucket bound finds it
    # less surely than the per-request tail band (measured 94 % against 100 %)
    tail = power(1.0, 2000, 100, seed=4, tail=1.3)
    assert tail["per_request"] >= 0.9 and tail["binned"] >= 0.85, tail
