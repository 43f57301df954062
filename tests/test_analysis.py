"""The judge on constructed data with known answers, and its reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cutover.judge.evidence import load_evidence_file
from cutover.judge.report import campaign_report, write_analysis
from cutover.judge.samples import Sample
from cutover.judge.stats import msprt
from cutover.judge.verdict import judge, missing_samples
from cutover.plan.model import Analysis

A = Analysis()


def samples(rng, n_c=3000, n_t=3000, t_scale=1.0, c_err=0.0, t_err=0.0, overlap=1.0, tail=None, seconds=10.0):
    """Recalls spread over `seconds`; each query's complete answer is 4 records (fewer than k), which
    the treatment returns each with probability `overlap`."""
    out = []
    for cohort, n, scale, err in (("control", n_c, 1.0, c_err), ("treatment", n_t, t_scale, t_err)):
        lat = rng.lognormal(np.log(40), 0.45, n) * scale
        if tail and cohort == "treatment":
            lat = np.where(lat > np.quantile(lat, 0.95), lat * tail, lat)
        for ts, x in zip(np.sort(rng.uniform(0, seconds, n)), lat, strict=True):
            qi = int(rng.integers(40))
            held = [f"q{qi}-r{j}" for j in range(4)]
            ids = held if cohort == "control" else [r for r in held if rng.random() < overlap]
            q = f"team/{qi}|q{qi}"
            out.append(Sample(float(ts), cohort, "recall", float(x), bool(rng.random() >= err), 200, ids, q))
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_identical_cohorts_promote(rng):
    v = judge(samples(rng), A, 0.5, ops=("recall",))
    assert v.verdict == "PROMOTE" and v.score == 100.0 and v.srm_p > 0.01


def test_a_shifted_latency_holds_and_a_large_one_rolls_back(rng):
    v = judge(samples(rng, t_scale=1.10), A, 0.5, ops=("recall",))
    assert v.verdict == "HOLD" and any("slower than allowed" in r for r in v.reasons)
    v = judge(samples(rng, t_scale=1.5), A, 0.5, ops=("recall",))
    assert v.verdict == "ROLLBACK" and any("critically slower" in r for r in v.reasons)


def test_sparse_errors_against_a_zero_baseline_fail(rng):
    v = judge(samples(rng, t_err=0.004), A, 0.5, ops=("recall",))  # ~12 errors vs none
    err = next(m for m in v.metrics if m.name == "recall_errors")
    assert err.figures["control_errors"] == 0 and err.figures["treatment_errors"] > 0
    assert err.classification in ("High", "Critical") and v.verdict != "PROMOTE"


def test_an_imbalanced_split_voids_the_verdict(rng):
    v = judge(samples(rng, n_c=3000, n_t=2400), A, 0.5, ops=("recall",))
    assert v.verdict == "HOLD" and v.srm_p < A.srm_p and "sample-ratio mismatch" in v.reasons[0]


def test_an_empty_cohort_is_nodata_and_never_passes(rng):
    v = judge(samples(rng, n_t=0), A, 0.5, ops=("recall",))
    assert v.verdict == "HOLD" and {m.classification for m in v.metrics} >= {"NoData"}


def test_low_overlap_fails_recall_quality(rng):
    v = judge(samples(rng, overlap=0.5), A, 0.5, ops=("recall",))
    ov = next(m for m in v.metrics if m.name == "recall_overlap")
    assert ov.classification in ("High", "Critical") and v.verdict != "PROMOTE"


def test_tail_only_regression_is_caught(rng):
    v = judge(samples(rng, n_c=4000, n_t=4000, tail=1.5), A, 0.5, ops=("recall",))
    lat = next(m for m in v.metrics if m.name == "recall_latency")
    assert lat.figures["median_ratio"] < 1.05 and lat.classification in ("High", "Critical")
    assert lat.figures["tail_ratio"] > 1 + A.tail_regression_max


def test_sequential_guardrail_is_quiet_on_aa_and_alarms_on_a_shift(rng):
    x, y = rng.normal(0, 1, 5000), rng.normal(0, 1, 5000)
    assert msprt(x, y) > 0.05
    assert msprt(x, y + 0.2) < 0.01


def test_reports_and_evidence(rng, tmp_path, plan):
    data = samples(rng, t_scale=1.10)
    v = judge(data, plan.effective("canary").analysis, 0.5, ops=("recall",))
    ev = write_analysis(v, data, plan, "canary", "staging", tmp_path / "canary")
    again = load_evidence_file(tmp_path / "canary" / "verdict.json")
    assert again.verdict == ev.verdict == "HOLD" and again.kind == "verdict" and again.samples["treatment"] == 3000
    report = (tmp_path / "canary" / "report.md").read_text()
    assert "**Verdict: HOLD**" in report and "![latency.png](latency.png)" in report
    for png in ("latency.png", "errors.png", "overlap.png"):
        assert (tmp_path / "canary" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = campaign_report(plan, [tmp_path], tmp_path / "final")
    text = path.read_text()
    assert "| canary | verdict | staging | HOLD |" in text and "latency.png" in text
    assert json.loads((tmp_path / "canary" / "verdict.json").read_text())["details"]["metrics"]


def test_missing_samples_names_what_a_verdict_lacks_and_is_empty_when_judge_has_enough(rng):
    few = samples(rng, n_c=3000, n_t=80)
    missing = missing_samples(few, A, ops=("recall",))
    assert missing == [f"recall treatment: 80 of {A.min_samples}"]
    assert judge(few, A, 0.5, ops=("recall",)).verdict == "HOLD"  # the judge agrees: NoData
    assert missing_samples(samples(rng), A, ops=("recall",)) == []
    assert missing_samples([], A, ops=("recall",))[-1].startswith("recall overlap: 0 of")
