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
    """JSON-shaped data in a stable order (Pulumi registers resources concurrently), without what the
    program records in the FeatureFlag's metadata (the phase start, a time; who changed it last):
    the live-flags tests below check those."""
    data = yaml.safe_load(yaml.safe_dump(objs))
    for o in data:
        if o["kind"] == "FeatureFlag":
            for key in ("phaseSince", "changedBy", "rollbackLevel"):  # what the program records there
                o["spec"]["flagSpec"]["metadata"].pop(key, None)
            o["metadata"].get("annotations", {}).pop(
                "pulumi.com/patchForce", None
            )  # it takes back what `cutover flags` set
    return sorted(data, key=lambda o: (o["kind"], o["metadata"]["name"]))


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


def _live(plan, state, change=None):
    """The flag set a cluster's FeatureFlag would hold after `cutover flags`/the controller (no cluster
    runs under Pulumi's mocks; tests/e2e/test_pulumi_up.py reads a real one)."""
    from cutover.flags.state import render_state

    return render_state(plan, state, "staging", change)


def _flag_set(objs: list[dict]) -> dict:
    (ff,) = [o for o in objs if o["kind"] == "FeatureFlag"]
    return ff["spec"]["flagSpec"]


def test_pulumi_up_never_silently_undoes_a_rollback_in_the_live_flags(plan, evidence_dir):
    """The controller rolled ramp-50 back (kill switch): a `pulumi up` that would change the flags is
    refused with the command to acknowledge it; keeping the rolled-back state, or acknowledging that
    rollback (its changedAt), goes through; a later rollback needs its own acknowledgement."""
    import time

    from cutover.flags.state import Change, FlagState

    at = time.time() - 60
    rolled = _live(plan, FlagState("ramp-50", True), Change("controller", "CutoverDriftHigh", "immediate", at=at))
    settings = _settings(phase="ramp-50")
    with pytest.raises(pulumi.RunError, match="live flags hold a rollback \\(immediate, by controller") as info:
        run_program("staging", settings, deployed_phase="ramp-50", live_flags=rolled)
    assert f"pulumi config set memoryos-rollout:acknowledgeRollback {round(at, 3)}" in str(info.value)
    kept = run_program(
        "staging", _settings(phase="ramp-50", killSwitch=True), deployed_phase="ramp-50", live_flags=rolled
    )
    assert _flag_set(kept)["flags"] == rolled["flags"]
    acked = run_program(
        "staging",
        _settings(phase="ramp-50", acknowledgeRollback=str(round(at, 3))),
        deployed_phase="ramp-50",
        live_flags=rolled,
    )
    assert _flag_set(acked)["metadata"]["killSwitch"] is False
    later = _live(plan, FlagState("ramp-50", True), Change("manual", "INC-9", "immediate", at=at + 30))
    with pytest.raises(pulumi.RunError, match="by manual"):
        run_program(
            "staging",
            _settings(phase="ramp-50", acknowledgeRollback=str(round(at, 3))),
            deployed_phase="ramp-50",
            live_flags=later,
        )


def test_pulumi_up_takes_the_phase_and_its_start_from_the_live_flags(plan, evidence_dir):
    """After a full rollback by hand (ramp-50 -> ramp-25, recorded in the flags), the stack is in
    ramp-25 whatever the last `pulumi up` deployed: going to ramp-50 again is a forward move, gated
    by ramp-25's minimum duration since that rollback (3d); staying records the live start, a move now."""
    import time

    from cutover.flags.state import Change, FlagState

    now = time.time()
    back = _live(plan, FlagState("ramp-25"), Change("manual", "p99", "full", at=now - 3600, phase_since=now - 3600))
    forward = _settings(phase="ramp-50", evidencePath=str(evidence_dir), acknowledgeRollback=str(round(now - 3600, 3)))
    with pytest.raises(pulumi.RunError, match="phase 'ramp-25' has a minimum duration of 3d: 2d 23h"):
        run_program("staging", forward, deployed_phase="ramp-50", live_flags=back)
    stay = run_program("staging", _settings(phase="ramp-25"), deployed_phase="ramp-50", live_flags=back)
    assert _flag_set(stay)["metadata"]["phaseSince"] == round(now - 3600, 3)
    (ff,) = [o for o in stay if o["kind"] == "FeatureFlag"]
    assert ff["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"
    with pytest.raises(pulumi.RunError, match="would overwrite it"):  # back too: the rollback is acknowledged first
        run_program("staging", _settings(phase="shadow"), deployed_phase="ramp-50", live_flags=back)
    ack = str(round(now - 3600, 3))
    moved = run_program(
        "staging", _settings(phase="shadow", acknowledgeRollback=ack), deployed_phase="ramp-50", live_flags=back
    )
    assert abs(_flag_set(moved)["metadata"]["phaseSince"] - time.time()) < 60
    assert (_flag_set(moved)["metadata"]["changedBy"], _flag_set(moved)["metadata"]["rollbackLevel"]) == ("pulumi", "")
