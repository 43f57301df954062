"""The plan model: defaults, overrides, effective settings and the semantic rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cutover.plan.errors import PlanError
from cutover.plan.model import Plan, load_plan

from .conftest import ROOT

PHASES = ["pre-deployment", "shadow", "canary", "ramp-25", "ramp-50", "ramp-75", "full"]


def test_the_repository_plan_has_the_seven_phases_in_order(plan):
    assert plan.phase_names == PHASES
    assert [plan.phase(p).flags.treatment.percentage for p in PHASES[2:6]] == [5, 25, 50, 75]
    assert plan.phase("full").flags.treatment.is_global
    assert plan.phase("shadow").flags.read_path == "shadow" and plan.phase("shadow").flags.write_mode == "mirror"
    for p in plan.phases:
        assert p.min_duration > 0 and p.title and p.description


def test_embedded_defaults_are_the_documented_ones():
    plan = Plan.model_validate({"phases": yaml.safe_load((ROOT / "rollout.yaml").read_text())["phases"]})
    a, t = plan.analysis, plan.abort_triggers
    assert (a.median_regression_max, a.tail_regression_max, a.topk_overlap_min) == (0.05, 0.15, 0.85)
    assert (a.judge_windows, a.drift_gate_min_samples) == (20, 20)
    assert (t.p95_latency_ms, t.error_rate, t.outbox_depth) == (450, 0.03, 200)


def test_phase_overrides_merge_over_plan_wide_settings(tmp_path):
    data = yaml.safe_load((ROOT / "rollout.yaml").read_text())
    data["analysis"] = {"min_samples": 400}
    data["phases"][2]["overrides"] = {"analysis": {"topk_overlap_min": 0.9}, "abort_triggers": {"for": "2m"}}
    f = tmp_path / "plan.yaml"
    f.write_text(yaml.safe_dump(data))
    plan = load_plan(f)
    canary, ramp = plan.effective("canary"), plan.effective("ramp-25")
    assert (canary.analysis.topk_overlap_min, canary.analysis.min_samples) == (0.9, 400)
    assert (ramp.analysis.topk_overlap_min, ramp.analysis.min_samples) == (0.85, 400)
    assert canary.abort_triggers.for_ == 120 and ramp.abort_triggers.for_ == 300
    assert any("0.9" in c for c in canary.success_criteria())


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((ROOT / "rollout.yaml").read_text())
    mutate(data)
    f = tmp_path / "plan.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


@pytest.mark.parametrize(
    "mutate, field, words, on_line",
    [
        (lambda d: d["phases"][3]["flags"].pop("write_mode"), "phases[3].flags.write_mode", "Field required", "flags:"),
        (
            lambda d: d["phases"][2]["flags"]["treatment"].update(percentage=140),
            "phases[2].flags.treatment.percentage",
            "100",
            "percentage: 140",
        ),
        (
            lambda d: d["phases"][4]["flags"]["treatment"].update(percentage=10),
            "phases[4].flags.treatment.percentage",
            "ramp goes down",
            "percentage: 10",
        ),
        (
            lambda d: d["phases"][1]["flags"].update(write_mode="legacy"),
            "phases[1].flags.write_mode",
            "miss every new write",
            "write_mode: legacy",
        ),
        (lambda d: d["phases"][2].update(name="ramp-25"), "phases[3].name", "listed twice", "name: ramp-25"),
        (lambda d: d["phases"][0].update(min_duraton="2d"), "phases[0].min_duraton", "Extra inputs", "min_duraton"),
        (
            lambda d: d["phases"][2].update(overrides={"analysis": {"top_k": 0}}),
            "phases[2].overrides.analysis.top_k",
            "greater than or equal",
            "top_k: 0",
        ),
        (
            lambda d: d["phases"][0].update(min_duration="soon"),
            "phases[0].min_duration",
            "not a duration",
            "min_duration: soon",
        ),
    ],
)
def test_invalid_plans_name_the_field_line_and_fix(tmp_path, mutate, field, words, on_line):
    f = _write(tmp_path, mutate)
    with pytest.raises(PlanError) as info:
        load_plan(f)
    e = info.value
    assert e.field == field and words in e.message and e.fix
    assert str(f) in str(e)
    assert on_line in f.read_text().splitlines()[e.line - 1], f"line {e.line} does not hold {on_line!r}"


def test_unknown_phase_lists_the_known_ones(plan):
    with pytest.raises(PlanError) as info:
        plan.effective("ramp-90")
    assert "ramp-90" in info.value.message and "ramp-75" in info.value.fix


def test_digest_changes_with_any_threshold(plan):
    other = plan.model_copy(update={"analysis": plan.analysis.model_copy(update={"min_samples": 1})})
    assert other.digest() != plan.digest() and plan.digest().startswith("sha256:")


def test_the_old_single_latency_threshold_is_refused_with_what_replaced_it(tmp_path):
    import yaml

    from cutover.plan.model import load_plan as load

    data = yaml.safe_load((ROOT / "rollout.yaml").read_text())
    data.setdefault("analysis", {})["p99_regression_max"] = 0.05
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(Exception, match="median_regression_max") as info:
        load(path)
    assert "tail_regression_max" in str(info.value)
