"""`pulumi up` by the real Pulumi engine and the Kubernetes provider, on a real kube-apiserver: one
phase per `pulumi up`, as the runbook says, with the gate's evidence written as the phases produce
it, every part enabled (gateway, Locust, nightly CronJob, migration Jobs, controller with its Role,
Secret and AlertmanagerConfig). This API server has no kubelet, so no pod runs: the stack sets
`skipAwait` (pulumi-kubernetes' documented `pulumi.com/skipAwait` annotation) and the provider does
not wait for Deployments, Jobs or Services to become ready; the server still validates every
object against its schema (the CRDs' too).

Beside it, the real flagd daemon syncs from the FeatureFlag in the API server (flagd's Kubernetes
sync, as the OpenFeature Operator's sidecar does) and a gateway asks it over RPC, started without
`--phase` as the Deployment runs it: the test measures the seconds from `pulumi up` (and from a
kill-switch patch) to the gateway's answers."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time

import pytest

from cutover.judge.evidence import new_evidence
from cutover.plan.model import load_plan
from cutover.plan.stacks import StackConfig, load_stack
from cutover.render.rendering import render

from ..conftest import ROOT
from ..flagdproc import Flagd
from ..gatewayproc import GatewayProcess, project_copy
from .conftest import PulumiProject

pytestmark = pytest.mark.e2e

STACK = "staging"
PARTS = ("gateway", "loadtest", "nightly", "migration", "controller")
PLAN = load_plan(ROOT / "rollout.yaml")
FLAGS = f"featureflag-{PLAN.name}-flags"
RULES = f"prometheusrule-{PLAN.name}-rules"
# What each step changes, stated: a phase step the flag set and the rules (thresholds and the
# phase's alerts); the kill switch the flag set alone. Never a workload, a dashboard or a Job.
PHASE_STEP = [FLAGS, RULES]
KILL_SWITCH = [FLAGS]


def is_subset(want, have, path="") -> list[str]:
    """Where `have` (the object as the server stores it) differs from `want` (as rendered); fields
    the server adds (uid, managedFields, status, defaults) are not differences."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path}: {have!r} is not a mapping"]
        return [d for k, v in want.items() for d in is_subset(v, have.get(k), f"{path}.{k}")]
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        return [d for i, (w, h) in enumerate(zip(want, have, strict=True)) for d in is_subset(w, h, f"{path}[{i}]")]
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


def settings(phase: str, kill: bool = False) -> StackConfig:
    """The stack as the e2e project configures it: staging, every part enabled, skipAwait."""
    s = {**load_stack(ROOT, STACK).model_dump(), "phase": phase, "killSwitch": kill, "skipAwait": True}
    for part in PARTS:
        s[part] = {**s[part], "enabled": True}
    return StackConfig.model_validate(s)


def rendering(phase: str, kill: bool = False):
    return render(PLAN, STACK, settings(phase, kill))


class Stack:
    """The e2e stack: the project copy, its config, and evidence written as the phases pass."""

    def __init__(self, project: PulumiProject):
        self.project = project

    def config(self, key: str, value: str) -> None:
        self.project("config", "set", f"memoryos-rollout:{key}", value, "--stack", STACK)

    def evidence(self, phase: str) -> None:
        """Passing evidence of every kind `phase` needs to leave it, where the stack's evidencePath points."""
        folder = self.project.dir / "evidence" / STACK
        folder.mkdir(parents=True, exist_ok=True)
        for kind in PLAN.phase(phase).exit_evidence:
            ev = new_evidence(kind, phase, "PROMOTE", stack=STACK, plan_digest=PLAN.digest(), reasons=["e2e fixture"])
            (folder / f"{phase}-{kind}.json").write_text(ev.to_json())

    def preview(self) -> list[str]:
        """The resources `pulumi preview` would change (create, update, replace or delete)."""
        out = json.loads(self.project("preview", "--json", "--stack", STACK).stdout)
        return sorted(s["urn"].rsplit("::", 1)[-1] for s in out.get("steps", []) if s["op"] not in ("same", "read"))

    def up(self, check: bool = True):
        return self.project("up", "--yes", "--stack", STACK, "--skip-preview", check=check)


def days_pass(cluster, namespace: str, phase: str) -> float:
    """The phase's minimum duration passes: the live FeatureFlag's recorded phase start is moved back
    by it (a merge patch, as any writer's), so the next forward `pulumi up` finds it spent. Returns
    the phase start the program had recorded."""
    name = f"{PLAN.name}-flags"
    live = cluster.get("core.openfeature.dev/v1beta1", "FeatureFlag", name, namespace)
    since = live["spec"]["flagSpec"]["metadata"]["phaseSince"]
    earlier = since - PLAN.phase(phase).min_duration - 60
    cluster.request(
        "PATCH",
        cluster.path("core.openfeature.dev/v1beta1", "FeatureFlag", name, namespace),
        {"spec": {"flagSpec": {"metadata": {"phaseSince": earlier}}}},
        content_type="application/merge-patch+json",
    )
    return float(since)


def answers_phase(gateway: GatewayProcess, want: str, kill: bool, deadline_s: float = 30) -> float:
    """Seconds until the gateway answers with `want` as its phase (X-Cutover-Phase) and the kill
    switch as given; fails past the deadline."""
    t0 = time.monotonic()
    seen = None
    while time.monotonic() - t0 < deadline_s:
        r = gateway.client("agent-probe").post("/v1/recall", json={"namespace": "n"})
        seen = (r.headers.get("X-Cutover-Phase"), r.json().get("path"), gateway.status()["flags"]["kill_switch"])
        if seen[0] == want and seen[2] is kill:
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"after {deadline_s} s the gateway answers {seen}, not phase {want} kill={kill}")


def test_pulumi_up_through_every_phase_forward_and_back_with_flagd_syncing_from_the_cluster(cluster, tmp_path):
    t_start = time.monotonic()
    project = PulumiProject(tmp_path, cluster.kubeconfig)
    stack = Stack(project)
    namespace = settings("pre-deployment").namespace
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    project("stack", "init", STACK)
    stack.config("skipAwait", "true")
    for part in PARTS:
        project("config", "set", "--path", f"memoryos-rollout:{part}.enabled", "true", "--stack", STACK)
    for key in ("adminToken", "webhookSecret"):
        project("config", "set", "--secret", f"memoryos-rollout:{key}", f"e2e-{key}-3f9c1a7b", "--stack", STACK)

    phases = PLAN.phase_names
    assert phases[0] == "pre-deployment" and phases[-1] == "full"
    stack.config("phase", phases[0])
    stack.up()  # the first deployment: its own StackReference has no output yet
    assert live_differences(cluster, rendering(phases[0])) == []
    kinds = {o["kind"] for o in rendering(phases[0]).manifests}
    assert {"Deployment", "CronJob", "Job", "AlertmanagerConfig", "Role", "ServiceMonitor"} <= kinds, kinds

    flagd = Flagd(f"core.openfeature.dev/{namespace}/{PLAN.name}-flags", tmp_path, cluster.kubeconfig).start()
    (tmp_path / "gw" / "data").mkdir(parents=True)
    gateway = GatewayProcess(project_copy(tmp_path / "gw"), tmp_path / "gw" / "data", None)  # as its Deployment
    seconds: dict[str, float] = {}
    try:
        gateway.start(None, "--flagd", flagd.address)
        answers_phase(gateway, phases[0], kill=False)

        # a closed gate: no evidence from pre-deployment yet; the cluster keeps the deployed phase
        stack.config("phase", phases[1])
        refused = stack.up(check=False)
        assert refused.returncode != 0 and f"the gate into '{phases[1]}' is closed" in refused.stdout + refused.stderr
        assert live_differences(cluster, rendering(phases[0])) == []

        for before, phase in itertools.pairwise(phases):
            stack.evidence(before)
            stack.config("phase", phase)
            early = stack.up(check=False)  # the phase has just begun: its minimum duration is ahead
            assert (
                early.returncode != 0 and f"phase '{before}' has a minimum duration of" in early.stdout + early.stderr
            )
            recorded = days_pass(cluster, namespace, before)
            assert abs(recorded - time.time()) < 600, recorded  # pulumi up recorded when the phase began
            stack.config("phase", phase)
            assert stack.preview() == PHASE_STEP, f"{before} -> {phase}"
            t0 = time.monotonic()
            stack.up()
            up_s = time.monotonic() - t0
            seconds[phase] = answers_phase(gateway, phase, kill=False)
            print(f"pulumi up {before} -> {phase}: {up_s:.1f} s; then flagd -> gateway: {seconds[phase]:.2f} s")
            assert live_differences(cluster, rendering(phase)) == [], f"after pulumi up at {phase}"
            if phase == "canary":  # a jump of two phases is refused, and nothing changes
                stack.config("phase", "ramp-50")
                jump = stack.up(check=False)
                assert jump.returncode != 0 and "phases advance one at a time" in jump.stdout + jump.stderr
                assert live_differences(cluster, rendering("canary")) == []
                stack.config("phase", "canary")

        # one step back, without evidence (a rollback needs none)
        stack.config("phase", "ramp-75")
        assert stack.preview() == PHASE_STEP
        stack.up()
        seconds["back to ramp-75"] = answers_phase(gateway, "ramp-75", kill=False)
        assert live_differences(cluster, rendering("ramp-75")) == []

        # the kill switch through pulumi: the FeatureFlag alone, on and off
        for kill in (True, False):
            stack.config("killSwitch", "true" if kill else "false")
            assert stack.preview() == KILL_SWITCH
            stack.up()
            seconds[f"kill switch {'on' if kill else 'off'} (pulumi up)"] = answers_phase(gateway, "ramp-75", kill)
            assert live_differences(cluster, rendering("ramp-75", kill)) == []
            if kill:
                recall = lambda agent: gateway.client(agent).post("/v1/recall", json={"namespace": "n"})  # noqa: E731
                assert {recall(f"a{i}").json()["path"] for i in range(30)} == {"legacy"}

        # the kill switch as on-call sets it in a cluster (the controller writes the same way): a
        # merge patch of the FeatureFlag by `cutover flags --featureflag`
        def flags(*args: str) -> None:
            argv = [sys.executable, "-m", "cutover.cli", "flags", "--stack", STACK, "--featureflag", featureflag]
            argv += ["--project-dir", str(project.dir), "--log", str(tmp_path / "rollbacks.jsonl"), *args]
            env = {**os.environ, "KUBECONFIG": cluster.kubeconfig}
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and "set and verified" in r.stdout, r.stdout + r.stderr

        featureflag = f"{namespace}/{PLAN.name}-flags"
        t0 = time.monotonic()
        flags("--kill-switch", "on")
        cli_s = time.monotonic() - t0
        seconds["kill switch on (cutover flags)"] = answers_phase(gateway, "ramp-75", kill=True)
        print(f"cutover flags --featureflag --kill-switch on: {cli_s:.1f} s")
        flags("--kill-switch", "off")
        answers_phase(gateway, "ramp-75", kill=False)
        # a rollback to shadow drops the targeting: the patch removes it (a merge patch keeps what it omits)
        flags("--phase", "shadow", "--reason", "e2e: a rollback by hand")
        answers_phase(gateway, "shadow", kill=False)
        live = cluster.get("core.openfeature.dev/v1beta1", "FeatureFlag", f"{PLAN.name}-flags", namespace)
        assert live["spec"]["flagSpec"]["flags"] == rendering("shadow").flags["flags"]

        # that rollback is never silently undone: pulumi up (still configured for ramp-75) refuses,
        # names the rollback and the acknowledgement; keeping the rolled-back phase goes through
        meta = live["spec"]["flagSpec"]["metadata"]
        undo = stack.up(check=False)
        said = undo.stdout + undo.stderr
        assert undo.returncode != 0 and "the live flags hold a rollback (full, by manual" in said, said
        assert f"acknowledgeRollback {meta['changedAt']}" in said
        assert cluster.get("core.openfeature.dev/v1beta1", "FeatureFlag", f"{PLAN.name}-flags", namespace) == live
        stack.config("phase", "shadow")
        stack.up()
        answers_phase(gateway, "shadow", kill=False)
        # going forward again from the rollback: shadow began at the rollback, 7d ago once days pass
        stack.evidence("shadow")
        days_pass(cluster, namespace, "shadow")
        stack.config("phase", "canary")
        stack.up()
        answers_phase(gateway, "canary", kill=False)
    finally:
        gateway.stop()
        flagd.stop()
    print("seconds to the gateway's answer: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))

    project("destroy", "--yes", "--stack", STACK, "--skip-preview")
    for obj in rendering("ramp-75").manifests:
        assert cluster.list(obj["apiVersion"], obj["kind"], namespace) == [], obj["kind"]
    print(f"e2e through every phase: {time.monotonic() - t_start:.0f} s")


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
