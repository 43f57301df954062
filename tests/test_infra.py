"""The Pulumi program under Pulumi's mocks: the same objects as `cutover render`, valid, and guarded."""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml

from cutover.plan.stacks import available_stacks, load_project
from cutover.render.rendering import render

from .conftest import ROOT, crd_validator
from .pulumi_harness import run_program

STACKS = available_stacks(ROOT)
PHASES = ["pre-deployment", "shadow", "canary", "ramp-25", "ramp-50", "ramp-75", "full"]


def stack_settings(stack: str) -> dict:
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in data.items() if k.startswith("memoryos-rollout:")}


def normal(objs: list[dict]) -> list:
    """JSON-shaped data in a stable order (Pulumi registers resources concurrently)."""
    return sorted(yaml.safe_load(yaml.safe_dump(objs)), key=lambda o: (o["kind"], o["metadata"]["name"]))


def test_both_stacks_exist():
    assert STACKS == ["production", "staging"]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("phase", PHASES)
def test_program_declares_exactly_what_render_writes(stack, phase):
    settings = {**stack_settings(stack), "phase": phase}
    settings.pop("evidencePath")  # re-applying the deployed phase needs no evidence
    declared = run_program(stack, settings, deployed_phase=phase)
    plan, cfg = load_project(ROOT, stack)
    expected = render(plan, stack, cfg.model_copy(update={"phase": phase})).manifests
    assert normal(declared) == normal(expected)
    labels = stack_settings(stack)["labels"]
    validators = {
        "FeatureFlag": crd_validator("crd-openfeature-featureflags.yaml", "v1beta1"),
        "PrometheusRule": crd_validator("crd-monitoring-prometheusrules.yaml", "v1"),
    }
    kinds = sorted(o["kind"] for o in declared)
    assert kinds == ["ConfigMap"] * 4 + ["FeatureFlag", "PrometheusRule"]
    for obj in declared:
        assert labels.items() <= obj["metadata"]["labels"].items()
        assert obj["metadata"]["name"] and obj["metadata"]["namespace"] == stack_settings(stack)["namespace"]
        if obj["kind"] in validators:
            errors = list(validators[obj["kind"]].iter_errors(obj))
            assert not errors, errors[0].message
        if obj["kind"] == "PrometheusRule":
            assert obj["metadata"]["labels"]["release"] == stack_settings(stack)["release"]
        if obj["kind"] == "ConfigMap":
            assert obj["metadata"]["labels"]["grafana_dashboard"] == "1"
            assert obj["metadata"]["annotations"]["grafana_folder"] == stack_settings(stack)["grafanaFolder"]
            (text,) = obj["data"].values()
            assert json.loads(text)["uid"].startswith("cutover-")


def _settings(**kw) -> dict:
    return {**stack_settings("staging"), **kw}


def test_first_deployment_must_be_the_first_phase():
    assert run_program("staging", _settings(phase="pre-deployment"), deployed_phase=None)
    with pytest.raises(Exception, match="cannot start the campaign at 'canary'"):
        run_program("staging", _settings(phase="canary"), deployed_phase=None)


def test_refuses_a_jump_of_more_than_one_phase(evidence_dir):
    with pytest.raises(pulumi.RunError, match=r"refusing phase 'ramp-25'.*phases advance one at a time"):
        run_program("staging", _settings(phase="ramp-25", evidencePath=str(evidence_dir)), deployed_phase="shadow")


def test_refuses_a_forward_step_without_passing_evidence(tmp_path, evidence_dir):
    with pytest.raises(Exception, match="gate into 'canary' is closed"):
        run_program("staging", _settings(phase="canary", evidencePath=str(tmp_path)), deployed_phase="shadow")
    # the newest canary verdict is a ROLLBACK: ramp-25 stays closed
    with pytest.raises(Exception, match="ROLLBACK"):
        run_program("staging", _settings(phase="ramp-25", evidencePath=str(evidence_dir)), deployed_phase="canary")


def test_forward_with_evidence_and_rollback_without(evidence_dir):
    objs = run_program("staging", _settings(phase="canary", evidencePath=str(evidence_dir)), deployed_phase="shadow")
    phase_of = lambda objs: {o["metadata"]["labels"].get("cutover.io/phase") for o in objs}  # noqa: E731
    assert phase_of(objs) == {"canary", None}  # the FeatureFlag's label; no other object names a phase
    objs = run_program("staging", _settings(phase="shadow", evidencePath=str(evidence_dir)), deployed_phase="ramp-75")
    assert phase_of(objs) == {"shadow", None}


def test_kill_switch_from_stack_config():
    (obj,) = [
        o
        for o in run_program("staging", _settings(phase="canary", killSwitch=True), deployed_phase="canary")
        if o["kind"] == "FeatureFlag"
    ]
    flags = obj["spec"]["flagSpec"]["flags"]
    assert flags["memory-kill-switch"]["defaultVariant"] == "on"
    assert flags["memory-read-path"]["variants"]["treatment"] == "legacy"
