"""The drift gate's window: readiness from running sums equals the textbook bound over the samples."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from cutover.judge.drift import DriftWindow, jaccard_distance, rbo


def upper_bound(xs: list[float], confidence: float) -> float:
    n = len(xs)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean + stats.t.ppf(confidence, n - 1) * sd / math.sqrt(n)


def test_readiness_matches_the_bound_over_the_samples():
    rng = random.Random(3)
    xs = [rng.betavariate(2, 20) for _ in range(5000)]
    w = DriftWindow()
    for x in xs:
        w.add(x)
    r = w.readiness(min_samples=200, threshold=0.15, confidence=0.95)
    assert r.samples == 5000 and r.mean == pytest.approx(math.fsum(xs) / 5000, rel=1e-12)
    assert r.upper_bound == pytest.approx(upper_bound(xs, 0.95), rel=1e-9)
    assert r.ready == (upper_bound(xs, 0.95) < 0.15)


def test_the_window_keeps_the_newest_samples_and_forgets_the_old():
    rng = random.Random(4)
    w = DriftWindow(size=1000)
    xs = [0.9] * 1000 + [rng.uniform(0, 0.2) for _ in range(1700)]  # the old, high drift leaves the window
    for x in xs:
        w.add(x)
    r = w.readiness(min_samples=100, threshold=0.15)
    assert r.samples == 1000
    assert r.mean == pytest.approx(math.fsum(xs[-1000:]) / 1000, rel=1e-9)
    assert r.upper_bound == pytest.approx(upper_bound(xs[-1000:], 0.95), rel=1e-9)
    assert r.ready


def test_one_outlier_does_not_close_the_gate_and_constant_drift_has_no_spread():
    w = DriftWindow()
    for _ in range(300):
        w.add(0.05)
    assert w.readiness(200, 0.15).upper_bound == pytest.approx(0.05)  # variance 0, never negative
    w.add(1.0)
    assert w.readiness(200, 0.15).ready


def test_too_few_samples_is_not_ready_and_says_how_many_are_needed():
    w = DriftWindow()
    assert not w.readiness(10, 0.15).ready and w.readiness(10, 0.15).mean is None
    for _ in range(9):
        w.add(0.0)
    r = w.readiness(10, 0.15)
    assert not r.ready and r.upper_bound is None and r.reason == "9 drift samples, 10 needed"


def test_pair_measures():
    assert jaccard_distance(["a", "b"], ["b", "c"], k=10) == pytest.approx(1 - 1 / 3)
    assert rbo(["a", "b", "c"], ["a", "b", "c"], p=0.9) == pytest.approx(1.0)
    assert rbo(["a", "b"], ["c", "d"], p=0.9) == 0.0
