"""The soak judge decides what a soak is for, under noise like this machine's: a load factor shared by
every request that drifts and jumps (time-correlated), not only independent samples. Both ways: steady
runs pass (false-HOLD rate measured), real creep, an SLO breach and errors hold or roll back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cutover.judge.samples import Sample
from cutover.judge.soak import judge_soak
from cutover.plan.model import load_plan

from .conftest import ROOT

PLAN = load_plan(ROOT / "rollout.yaml")
EFF = PLAN.effective("pre-deployment")
A, MON = EFF.analysis, EFF.monitoring


def soak(
    rng: np.random.Generator,
    seconds: float = 20,
    rate: float = 150,
    creep: float = 0.0,
    base_ms: float = 4.0,
    error_share: float = 0.0,
    rss_growth: float = 1.01,
) -> list[Sample]:
    """A soak's samples: recalls and writes at `rate`/s; each latency = base x load(t) x e^noise, where
    load(t) is shared by all requests at time t: an AR(1) walk per second (6 % steps, as the median of
    a second moved here) with a jump of +/-15 % now and then; recalls times e^(creep x t / seconds)."""
    n = int(seconds * rate)
    ts = np.sort(rng.uniform(0, seconds, n))
    per_s = np.zeros(int(seconds) + 1)
    for i in range(1, len(per_s)):
        per_s[i] = 0.6 * per_s[i - 1] + rng.normal(0, 0.04) + (rng.choice([-0.15, 0.15]) if rng.random() < 0.03 else 0)
    ops = np.where(rng.random(n) < 0.7, "recall", "remember")
    # the creep is the read path's (a corpus or an index that slows recalls): writes do not creep
    load = np.exp(per_s[ts.astype(int)] + (ops == "recall") * math.log1p(creep) * ts / seconds)
    lat = base_ms * load * np.exp(rng.normal(0, 0.35, n))
    ok = rng.random(n) >= error_share
    out = [Sample(float(t), "control", str(o), float(x), bool(k)) for t, o, x, k in zip(ts, ops, lat, ok, strict=True)]
    out += [
        Sample(float(t), "control", "probe", 0.0, True, rss_mb=200 * rss_growth ** (t / seconds))
        for t in range(0, 21, 2)
    ]
    return out


def verdicts(runs: int, seed: int, **kw) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        judge_soak(
            soak(rng, **kw), A, EFF.abort_triggers.error_rate, MON.recall_p99_ms, MON.recall_availability
        ).verdict
        for _ in range(runs)
    ]


def test_steady_soaks_under_correlated_noise_pass_at_least_98_in_100():
    out = verdicts(300, 1)
    assert out.count("PROMOTE") / len(out) >= 0.98, {v: out.count(v) for v in set(out)}


def test_the_old_thirds_comparison_would_have_held_these_runs():
    """The same steady runs, judged as before (first third vs last third, per request): the noise the
    new judge is built for. Kept as the reason for the windows."""
    from scipy import stats

    rng = np.random.default_rng(1)
    held = 0
    for _ in range(100):
        recalls = sorted((s for s in soak(rng) if s.op == "recall"), key=lambda s: s.ts)
        third = len(recalls) // 3
        early, late = [s.latency_ms for s in recalls[:third]], [s.latency_ms for s in recalls[-third:]]
        shift = np.median(late) / np.median(early) - 1
        held += shift > 0.05 and stats.mannwhitneyu(late, early, alternative="greater").pvalue < 0.01
    assert held >= 10  # one in ten or more: the false HOLDs of the issue


def test_latency_creeping_half_again_over_the_run_holds():
    out = verdicts(100, 2, creep=0.5)
    assert out.count("HOLD") >= 95, {v: out.count(v) for v in set(out)}


def test_a_p99_above_the_slo_target_holds_and_says_so():
    rng = np.random.default_rng(3)
    v = judge_soak(soak(rng, base_ms=MON.recall_p99_ms / 2), A, 0.03, MON.recall_p99_ms, MON.recall_availability)
    assert v.verdict == "HOLD" and any("above the SLO target" in r for r in v.reasons), v.reasons


@pytest.mark.parametrize("share, decision", [(0.005, "HOLD"), (0.06, "ROLLBACK")])
def test_errors_above_the_budget_hold_and_above_the_abort_trigger_roll_back(share, decision):
    rng = np.random.default_rng(4)
    v = judge_soak(soak(rng, error_share=share), A, 0.03, MON.recall_p99_ms, MON.recall_availability)
    assert v.verdict == decision, v.reasons


def test_memory_growth_holds_and_its_slope_is_reported():
    rng = np.random.default_rng(5)
    v = judge_soak(soak(rng, rss_growth=2.0), A, 0.03, MON.recall_p99_ms, MON.recall_availability)
    rm = next(m for m in v.metrics if m.name == "resident_memory")
    assert v.verdict == "HOLD" and rm.figures["slope_interval"][0] > 0


def test_open_files_outbox_and_wal_slopes_are_reported_with_an_interval():
    rng = np.random.default_rng(9)
    data = [s for s in soak(rng) if s.op != "probe"]
    for t in range(0, 21, 2):  # a leak of 3 files a probe; outbox and WAL flat
        data.append(
            Sample(float(t), "gateway", "probe", 0.0, True, rss_mb=200.0, open_fds=40.0 + 1.5 * t, outbox_depth=0.0,
                   wal_frames=120.0)
        )  # fmt: skip
    v = judge_soak(data, A, EFF.abort_triggers.error_rate, MON.recall_p99_ms, MON.recall_availability)
    f = next(m for m in v.metrics if m.name == "resident_memory").figures
    assert abs(f["open_fds_per_min"]["slope"] - 90) < 1e-6 and f["open_fds_per_min"]["interval"][0] > 0
    assert f["outbox_depth_per_min"] == {"slope": 0.0, "interval": [0.0, 0.0], "last": 0.0}
    assert f["wal_frames_per_min"]["last"] == 120.0
