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


# -- parity drift on real stores: the gate out of shadow measures data parity, not ranking -------------
WORDS = ["apple", "river", "coffee", "budget", "travel", "alpha"]
DAY = 86_400_000


def shadow_corpus(tmp_path, missing: float = 0.0, altered: float = 0.0, seed: int = 5):
    """Legacy and MemoryOS stores holding one corpus in which every query matches about 3 x k records
    of mixed age and tier (MemoryOS ranks them by relevance, heat, recency and tier; legacy newest
    first), MemoryOS missing a share of the records and holding another share altered."""
    from cutover.store.faults import FaultyStore
    from cutover.store.legacy import LegacyStore
    from cutover.store.memoryos import MemoryOSStore
    from cutover.store.records import Record, now_ms

    rng = random.Random(seed)
    legacy, memoryos = LegacyStore(tmp_path / "l.db"), MemoryOSStore(tmp_path / "m.db")
    now = now_ms()
    records = []
    for ns in range(4):
        for i in range(90):  # 90 a namespace, each query word in about 45 of them: 3 x k = 30 and more
            records.append(
                Record(
                    id=f"r{ns}-{i}",
                    namespace=f"agents/{ns}",
                    text=" ".join(rng.sample(WORDS, 3)),
                    tags=[rng.choice(["a", "b"])],
                    observed_at=now - rng.randint(0, 89) * DAY,
                    metadata={"mem_os": {"tier": rng.choice(["short", "mid", "long"]), "heat": rng.choice([0, 2, 9])}},
                )
            )
    legacy.put_many(records)
    kept = []
    for r in records:
        x = rng.random()
        if x < missing:
            continue
        if x < missing + altered:
            r = r.model_copy(update={"tags": [*r.tags, "altered"]})
        kept.append(r)
    memoryos.put_many(kept)
    return FaultyStore(legacy), FaultyStore(memoryos)


def gate(tmp_path, **corpus):
    from cutover.gateway.shadow import answer_keys, shadow_sample
    from cutover.plan.model import load_plan
    from cutover.store.records import RecallQuery

    from .conftest import ROOT

    plan = load_plan(ROOT / "rollout.yaml")
    legacy, memoryos = shadow_corpus(tmp_path, **corpus)
    rng = random.Random(11)
    parity, ranking = DriftWindow(), []
    for _ in range(200):
        q = RecallQuery(namespace=f"agents/{rng.randrange(4)}", query=rng.choice(WORDS), limit=plan.analysis.top_k)
        answer = answer_keys(legacy.recall(q))
        p, jaccard, _ = shadow_sample(q, answer, memoryos, legacy, plan.analysis.top_k, plan.analysis.rbo_p)
        parity.add(p)
        ranking.append(jaccard)
    a = plan.analysis
    readiness = parity.readiness(a.drift_gate_min_samples, plan.monitoring.drift_max, plan.gateway.drift_confidence)
    return readiness, sum(ranking) / len(ranking)


def test_at_full_parity_the_gate_opens_however_differently_the_stores_rank(tmp_path):
    readiness, ranking_change = gate(tmp_path)
    assert readiness.ready and readiness.mean == 0.0, readiness
    assert ranking_change > 0.2  # reported, not gating: MemoryOS ranks by design apart from legacy


def test_a_third_of_the_records_missing_in_memoryos_keeps_the_gate_closed(tmp_path):
    readiness, _ = gate(tmp_path, missing=1 / 3)
    assert not readiness.ready and readiness.mean > 0.1, readiness


def test_a_tenth_of_the_records_altered_in_memoryos_keeps_the_gate_closed(tmp_path):
    readiness, _ = gate(tmp_path, altered=0.1)
    assert not readiness.ready and readiness.mean > 0.05, readiness


def test_parity_drift_counts_missing_altered_and_stale_records_once_each():
    from cutover.judge.drift import parity_drift

    legacy_top = {"a": "a|1|x", "b": "b|1|y", "c": "c|1|z"}
    # MemoryOS holds a, holds b altered, lacks c; it answers a, d; legacy no longer holds d (stale)
    held, held_back = {"a": "a|1|x", "b": "b|1|Y"}, {"a": "a|1|x"}
    assert parity_drift(legacy_top, held, {"a": "a|1|x", "d": "d|1|w"}, held_back) == 3 / 4
    assert parity_drift({}, {}, {}, {}) == 0.0
    same = {"a": "a|1|x"}
    assert parity_drift(same, same, same, same) == 0.0
