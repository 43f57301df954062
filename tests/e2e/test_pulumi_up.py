"""`pulumi up` by the real Pulumi engine and the Kubernetes provider, on a real kube-apiserver: one
phase per `pulumi up`, as the runbook says, with the gate's evidence written as the phases produce
it. After each step the objects in the API server are what `cutover render` writes for that phase.
Only the default objects (FeatureFlag, PrometheusRule, dashboard ConfigMaps) are declared here: the
workloads (gateway, Locust, CronJob, Jobs) need a kubelet to become ready, which this API server
has not."""

from __future__ import annotations

import json

import pytest

from cutover.judge.evidence import new_evidence
from cutover.plan.stacks import StackConfig, load_stack
from cutover.render.rendering import render

from ..conftest import ROOT
from .conftest import PulumiProject

pytestmark = pytest.mark.e2e

STACK = "staging"


def is_subset(want, have, path="") -> list[str]:
    """Where `have` (the object as the server stores it) differs from `want` (as rendered); fields
    the server adds (uid, managedFields, status, defaults) are not differences."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path}: {have!r} is not a mapping"]
        return [d for k, v in want.items() for d in is_subset(v, have.get(k), f"{path}.{k}")]
    return [] if want == have else [f"{path}: {have!r} != {want!r}"]


def live_differences(cluster, rendering) -> list[str]:
    diffs = []
    for obj in rendering.manifests:
        md = obj["metadata"]
        try:
            live = cluster.get(obj["apiVersion"], obj["kind"], md["name"], md["namespace"])
        except Exception as exc:  # a missing object is a difference
            diffs.append(f"{obj['kind']} {md['name']}: {exc}")
            continue
        diffs += [f"{obj['kind']} {md['name']}{d}" for d in is_subset(obj, live)]
    return diffs


def evidence_for(project: PulumiProject, plan, phase: str) -> None:
    """Passing evidence of every kind `phase` needs to leave it, where the stack's evidencePath points."""
    folder = project.dir / "evidence" / STACK
    folder.mkdir(parents=True, exist_ok=True)
    for kind in plan.phase(phase).exit_evidence:
        ev = new_evidence(kind, phase, "PROMOTE", stack=STACK, plan_digest=plan.digest(), reasons=["e2e fixture"])
        (folder / f"{phase}-{kind}.json").write_text(ev.to_json())


def test_pulumi_up_phase_by_phase_on_a_real_api_server(cluster, tmp_path):
    project = PulumiProject(tmp_path, cluster.kubeconfig)
    cfg = load_stack(ROOT, STACK)
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.namespace}})
    plan_phases = None

    def at(phase: str, **extra):
        settings = {**cfg.model_dump(), "phase": phase, **extra}
        from cutover.plan.model import load_plan

        plan = load_plan(ROOT / "rollout.yaml")
        return plan, render(plan, STACK, StackConfig.model_validate(settings))

    def up_to(phase: str) -> None:
        project("config", "set", "memoryos-rollout:phase", phase, "--stack", STACK)
        project("up", "--yes", "--stack", STACK, "--skip-preview")
        plan, rendering = at(phase)
        assert live_differences(cluster, rendering) == [], f"after pulumi up at {phase}"
        flag = cluster.get("core.openfeature.dev/v1beta1", "FeatureFlag", f"{plan.name}-flags", cfg.namespace)
        assert flag["spec"]["flagSpec"]["metadata"]["phase"] == phase

    project("stack", "init", STACK)
    plan, _ = at("pre-deployment")
    plan_phases = plan.phase_names
    up_to("pre-deployment")  # the first deployment: its own StackReference has no output yet

    # a closed gate: no evidence from pre-deployment yet; the cluster keeps the deployed phase
    project("config", "set", "memoryos-rollout:phase", "shadow", "--stack", STACK)
    refused = project("up", "--yes", "--stack", STACK, "--skip-preview", check=False)
    assert refused.returncode != 0 and "the gate into 'shadow' is closed" in refused.stdout + refused.stderr
    assert live_differences(cluster, at("pre-deployment")[1]) == []

    evidence_for(project, plan, "pre-deployment")
    up_to("shadow")

    # the kill switch changes the FeatureFlag and nothing else (previewed in shadow: see the xfail below)
    project("config", "set", "memoryos-rollout:killSwitch", "true", "--stack", STACK)
    preview = json.loads(project("preview", "--json", "--stack", STACK).stdout)
    changed = sorted(s["urn"].rsplit("::", 1)[-1] for s in preview.get("steps", []) if s["op"] not in ("same", "read"))
    assert changed == [f"featureflag-{plan.name}-flags"], changed
    project("config", "set", "memoryos-rollout:killSwitch", "false", "--stack", STACK)
    evidence_for(project, plan, "shadow")
    up_to("canary")

    # a jump of two phases is refused, and nothing changes
    project("config", "set", "memoryos-rollout:phase", "ramp-50", "--stack", STACK)
    jump = project("up", "--yes", "--stack", STACK, "--skip-preview", check=False)
    assert jump.returncode != 0 and "phases advance one at a time" in jump.stdout + jump.stderr
    assert live_differences(cluster, at("canary")[1]) == []

    project("destroy", "--yes", "--stack", STACK, "--skip-preview")
    for obj in at("canary")[1].manifests:
        assert cluster.list(obj["apiVersion"], obj["kind"], cfg.namespace) == [], obj["kind"]
    assert plan_phases[0] == "pre-deployment"


@pytest.mark.parametrize("phase", ["canary"])
def test_the_admin_token_set_as_a_secret_is_not_in_the_state_in_plain_text(cluster, tmp_path, phase):
    """`pulumi config set --secret`: the stack file and the state hold ciphertext only."""
    project = PulumiProject(tmp_path, cluster.kubeconfig)
    project("stack", "init", STACK)
    token = "e2e-admin-token-3f9c1a7b"
    project("config", "set", "--secret", "memoryos-rollout:adminToken", token, "--stack", STACK)
    assert token not in (project.dir / f"Pulumi.{STACK}.yaml").read_text()
    assert project("config", "get", "memoryos-rollout:adminToken", "--stack", STACK).stdout.strip() == token
    assert not any(token in p.read_text(errors="replace") for p in project.state.rglob("*") if p.is_file())


@pytest.mark.xfail(
    strict=True,
    reason="engine defect: pulumi-resource-kubernetes at the only pseudo-version the module proxy serves "
    "(v4.0.0-20260115033456-f47bc2d6f199) panics in its Diff (pruneLiveState -> pruneMap -> pruneSlice, "
    "pkg/provider/util.go:306) on the live canary objects, whose JSONLogic targeting nests arrays in arrays: "
    "every preview or up after canary fails with 'error reading from server: connection reset by peer'. "
    "Strict: this test fails the suite once the provider is fixed.",
)
def test_a_later_forward_step_updates_the_objects(cluster, tmp_path):
    project = PulumiProject(tmp_path, cluster.kubeconfig)
    cfg = load_stack(ROOT, STACK)
    from cutover.plan.model import load_plan

    plan = load_plan(ROOT / "rollout.yaml")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.namespace}}
    if not cluster.list("v1", "Namespace") or cfg.namespace not in {
        n["metadata"]["name"] for n in cluster.list("v1", "Namespace")
    }:
        cluster.create(namespace)
    project("stack", "init", STACK)
    for phase in ("pre-deployment", "shadow", "canary", "ramp-25"):
        project("config", "set", "memoryos-rollout:phase", phase, "--stack", STACK)
        project("up", "--yes", "--stack", STACK, "--skip-preview")
        evidence_for(project, plan, phase)
    settings = {**cfg.model_dump(), "phase": "ramp-25"}
    assert live_differences(cluster, render(plan, STACK, StackConfig.model_validate(settings))) == []
