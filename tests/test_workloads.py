"""Scale-out on Kubernetes: each part exists only when its stack enables it, Pulumi declares what
`render` writes, every object validates (core kinds with kubernetes-validate, CRDs against the shared
schemas), and the migration Job's shards, run as the pods would run them, cover every namespace once."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pulumi
import pytest
import yaml

from cutover.plan.stacks import StackConfig, available_stacks, load_project
from cutover.render import workloads
from cutover.render.rendering import render
from cutover.store.memoryos import MemoryOSStore

from .conftest import ROOT, crd_validator
from .pulumi_harness import run_program
from .test_infra import normal, stack_settings

STACKS = available_stacks(ROOT)
K8S_VERSION = "1.31"  # the oldest Kubernetes the objects must validate against (CronJob timeZone, backoffLimitPerIndex)
PARTS = {  # part -> the components its objects carry (app.kubernetes.io/component)
    "gateway": {"gateway", "plan"},
    "loadtest": {"loadtest", "locust-master", "locust-worker", "plan"},
    "nightly": {"loadtest", "nightly", "plan"},
    "migration": {"migration"},
    "controller": {"controller", "plan"},
}
CRDS = {
    "FeatureFlag": ("crd-openfeature-featureflags.yaml", "v1beta1"),
    "FeatureFlagSource": ("crd-openfeature-featureflagsources.yaml", "v1beta1"),
    "PrometheusRule": ("crd-monitoring-prometheusrules.yaml", "v1"),
    "ServiceMonitor": ("crd-monitoring-servicemonitors.yaml", "v1"),
}
TOKEN = "t0k3n-from-pulumi-secret-config"


def settings(stack: str, parts: tuple[str, ...], **extra) -> dict:
    s = {**stack_settings(stack), "phase": "canary", **extra}
    s.pop("evidencePath")  # re-applying the deployed phase needs no evidence
    for part in parts:
        s[part] = {**s.get(part, {}), "enabled": True}
    return s


def rendered(stack: str, s: dict):
    plan, _ = load_project(ROOT, stack)
    return plan, render(plan, stack, StackConfig.model_validate(s))


def component(obj: dict) -> str | None:
    return obj["metadata"]["labels"].get("app.kubernetes.io/component")


def validate_alertmanager_config(obj: dict) -> None:
    """AlertmanagerConfig (monitoring.coreos.com/v1alpha1): its CRD schema is not vendored (see
    tests/schemas/SOURCES.yaml), so the fields the operator reads are checked here by name."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    spec = obj["spec"]
    assert set(spec) == {"route", "receivers"}
    assert set(spec["route"]) <= {"receiver", "groupBy", "groupWait", "groupInterval", "repeatInterval", "matchers"}
    assert {m["matchType"] for m in spec["route"]["matchers"]} <= {"=", "!=", "=~", "!~"}
    (receiver,) = spec["receivers"]
    assert receiver["name"] == spec["route"]["receiver"]
    (hook,) = receiver["webhookConfigs"]
    assert set(hook) == {"url", "sendResolved", "httpConfig"}
    assert set(hook["httpConfig"]["authorization"]["credentials"]) == {"name", "key"}


def validate(obj: dict) -> None:
    if obj["kind"] == "AlertmanagerConfig":
        validate_alertmanager_config(obj)
    elif obj["kind"] in CRDS:
        errors = list(crd_validator(*CRDS[obj["kind"]]).iter_errors(obj))
        assert not errors, f"{obj['kind']} {obj['metadata']['name']}: {errors[0].message}"
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)  # raises on any unknown or wrong field


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(
    "parts",
    [
        (),
        ("gateway",),
        ("loadtest",),
        ("nightly",),
        ("migration",),
        ("controller",),
        ("gateway", "loadtest", "nightly", "migration", "controller"),
    ],
    ids="-".join,
)
def test_objects_exist_only_when_enabled_and_pulumi_declares_what_render_writes(stack, parts):
    s = settings(stack, parts)
    _plan, r = rendered(stack, s)
    declared = run_program(stack, s, deployed_phase="canary", secrets={"adminToken": TOKEN, "webhookSecret": TOKEN})
    base = {"FeatureFlag", "PrometheusRule"}  # flags, rules and the 4 dashboards are always there
    scale_out = [o for o in declared if o["kind"] not in base and "grafana_dashboard" not in o["metadata"]["labels"]]
    assert {component(o) for o in scale_out} == set().union(*(PARTS[p] for p in parts))
    if not parts:
        assert scale_out == [] and r.secrets == []

    # the same objects as `cutover render`, plus the admin Secret filled from the secret config value
    secret = [o for o in declared if o["kind"] == "Secret"]
    assert normal([o for o in declared if o["kind"] != "Secret"]) == normal(r.manifests)
    assert len(secret) == len(r.secrets) == ("gateway" in parts) + ("controller" in parts)
    for sec, bare in zip(secret, r.secrets):
        assert sec["stringData"]["value"] == {"token": TOKEN}
        assert sec["stringData"][pulumi.runtime.rpc._special_sig_key] == pulumi.runtime.rpc._special_secret_sig
        assert {k: v for k, v in sec.items() if k != "stringData"} == {**bare, "metadata": sec["metadata"]}
        assert "stringData" not in bare and "data" not in bare
    assert TOKEN not in json.dumps(r.files())  # rendered files never hold the token

    labels = stack_settings(stack)["labels"]
    for obj in [*r.manifests, *r.secrets]:
        assert labels.items() <= obj["metadata"]["labels"].items(), obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["cutover.io/stack"] == stack
        assert obj["metadata"]["namespace"] == stack_settings(stack)["namespace"]
        validate(obj)
        pod = workloads.pod_spec(obj)
        if pod is not None:  # pods carry the stack's labels too (selectors match them)
            tmpl = (
                obj["spec"]["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else obj["spec"]["template"]
            )
            assert labels.items() <= tmpl["metadata"]["labels"].items()
            for c in pod["containers"]:
                assert c["image"] == StackConfig.model_validate(s).image


def test_gateway_objects_fit_together():
    s = settings("production", ("gateway",), gateway={"replicas": 4, "minAvailable": 3, "port": 9090})
    plan, r = rendered("production", s)
    objs = {(o["kind"], o["metadata"]["name"]): o for o in r.manifests}
    n = workloads.names(plan)
    dep, svc = objs[("Deployment", n["gateway"])], objs[("Service", n["gateway"])]
    pdb, mon = objs[("PodDisruptionBudget", n["gateway"])], objs[("ServiceMonitor", n["gateway"])]
    ffs, ff = objs[("FeatureFlagSource", n["flagsource"])], objs[("FeatureFlag", n["flags"])]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    for selector in (
        dep["spec"]["selector"]["matchLabels"],
        svc["spec"]["selector"],
        pdb["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    assert "cutover.io/phase" not in dep["spec"]["selector"]["matchLabels"]  # selectors are immutable: no phase
    assert mon["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert mon["metadata"]["labels"]["release"] == stack_settings("production")["release"]
    assert mon["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "http"
    assert dep["spec"]["replicas"] == 4 and pdb["spec"]["minAvailable"] == 3
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["ports"][0]["containerPort"] == 9090 and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # flags: the operator injects flagd fed by this stack's FeatureFlag; the gateway asks that sidecar
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert (
        ann["openfeature.dev/enabled"] == "true" and ann["openfeature.dev/featureflagsource"] == ffs["metadata"]["name"]
    )
    assert ffs["spec"]["sources"] == [
        {"source": f"{ff['metadata']['namespace']}/{ff['metadata']['name']}", "provider": "kubernetes"}
    ]
    assert c["command"][c["command"].index("--flagd") + 1] == f"localhost:{ffs['spec']['port']}"
    (env,) = c["env"]
    assert env == {"name": "CUTOVER_ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {"name": n["admin"], "key": "token"}}}
    assert parse_cutover(c["command"]).info_name == "serve"


def parse_cutover(argv: list[str]):
    """Parse a container's `cutover ...` command line with the real CLI: unknown options fail."""
    import click
    from typer.main import get_command

    from cutover.cli.main import app

    assert argv[0] == "cutover", argv
    group = get_command(app)
    sub = group.get_command(click.Context(group), argv[1])
    assert sub is not None, f"no command {argv[1]!r}"
    return sub.make_context(argv[1], list(argv[2:]))


@pytest.mark.parametrize("stack", STACKS)
def test_every_cutover_command_in_a_container_parses(stack):
    import shlex

    _, r = rendered(stack, settings(stack, tuple(PARTS)))
    seen = set()
    for obj in r.manifests:
        pod = workloads.pod_spec(obj)
        for c in (pod or {}).get("containers", []):
            if c["command"][0] == "cutover":
                lines = [c["command"]]
            else:  # a shell script: every line that runs cutover, with the shell's variables left as words
                lines = [shlex.split(ln.replace("$", "")) for ln in c["command"][2].splitlines()]
                lines = [ln[ln.index("cutover") :] for ln in lines if "cutover" in ln]
                lines = [ln[: ln.index("||")] if "||" in ln else ln for ln in lines]
            for argv in lines:
                seen.add(parse_cutover(argv).info_name)
    assert seen == {"serve", "analyze", "loadtest", "migrate", "reconcile", "controller"}


def test_controller_objects_fit_together():
    """The controller may patch only its FeatureFlag; Alertmanager reaches its Service with the
    webhook Secret; the abort alerts carry the namespace the AlertmanagerConfig routes."""
    plan, r = rendered("production", settings("production", ("controller",)))
    by = {(o["kind"], o["metadata"]["name"]): o for o in r.manifests}
    n = workloads.names(plan)
    (rule,) = by[("Role", n["controller"])]["rules"]
    assert rule["resourceNames"] == [n["flags"]] and rule["verbs"] == ["get", "patch"]
    deploy = by[("Deployment", n["controller"])]
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == n["controller"]
    command = deploy["spec"]["template"]["spec"]["containers"][0]["command"]
    ns = stack_settings("production")["namespace"]
    assert command[command.index("--featureflag") + 1] == f"{ns}/{n['flags']}"
    amc = by[("AlertmanagerConfig", n["controller"])]
    hook = amc["spec"]["receivers"][0]["webhookConfigs"][0]
    service = by[("Service", n["controller"])]
    assert (
        hook["url"]
        == f"http://{service['metadata']['name']}.{ns}.svc:{service['spec']['ports'][0]['port']}/alertmanager"
    )
    assert hook["httpConfig"]["authorization"]["credentials"]["name"] == n["webhook"]
    assert [x["metadata"]["name"] for x in r.secrets] == [n["webhook"]]
    assert amc["metadata"]["labels"]["release"] == stack_settings("production").get("release", "kube-prometheus-stack")
    abort = [x for g in r.rules["groups"] for x in g["rules"] if x.get("labels", {}).get("action") == "rollback"]
    assert abort and all(x["labels"]["namespace"] == ns for x in abort)
    assert "alertmanager-receiver.yaml" in r.files()


def test_gateway_without_the_secret_admin_token_is_refused():
    with pytest.raises(pulumi.RunError, match=r"adminToken, which is not set.*--secret"):
        run_program("staging", settings("staging", ("gateway",)), deployed_phase="canary")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"gateway": {"enabled": True, "replicas": 2, "minAvailable": 2}}, "minAvailable"),
        ({"nightly": {"enabled": True, "schedule": "every night"}}, "not a cron schedule"),
        ({"migration": {"enabled": True, "shards": 0}}, "greater than or equal to 1"),
        ({"loadtest": {"enabled": True, "workerz": 3}}, "Extra inputs"),
    ],
)
def test_bad_part_settings_are_named(tmp_path, bad, message):
    stack_file = tmp_path / "Pulumi.lab.yaml"
    cfg = {f"memoryos-rollout:{k}": v for k, v in {**settings("staging", ()), **bad}.items()}
    stack_file.write_text(yaml.safe_dump({"config": cfg}))
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "rollout.yaml").write_text((ROOT / "rollout.yaml").read_text())
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cutover.cli",
            "render",
            "--stack",
            "lab",
            "--project-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Pulumi.lab.yaml" in r.stderr and "Traceback" not in r.stderr


def test_migration_shards_run_as_the_job_runs_them_cover_every_namespace_once(tmp_path):
    """The Indexed Job's pods, run here as the Job runs them (same shell command, JOB_COMPLETION_INDEX
    0..n-1, all at once, the volume at /data mapped to a temp dir), then the reconcile Job."""
    shards = 3
    rng = random.Random(7)
    namespaces = [f"team-{i}/agent-{rng.randrange(10_000)}" for i in range(30)]
    with (tmp_path / "export.jsonl").open("w") as f:
        for ns in namespaces:
            for j in range(rng.randrange(1, 8)):
                f.write(json.dumps({"id": f"r{j}", "namespace": ns, "text": f"note {j} of {ns}"}) + "\n")
    s = settings("staging", ("migration",), migration={"shards": shards})
    plan, r = rendered("staging", s)
    n = workloads.names(plan)
    objs = {(o["kind"], o["metadata"]["name"]): o for o in r.manifests}
    job, rec = objs[("Job", n["migrate"])], objs[("Job", n["reconcile"])]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == shards

    def shell(obj: dict) -> str:
        (c,) = workloads.pod_spec(obj)["containers"]
        assert c["command"][:2] == ["/bin/sh", "-c"] and c["volumeMounts"][0]["mountPath"] == "/data"
        return c["command"][2].replace("/data/", f"{tmp_path}/")

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    pods = [
        subprocess.Popen(
            ["/bin/sh", "-c", shell(job)],
            env={**env, "JOB_COMPLETION_INDEX": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(shards)
    ]
    for pod in pods:
        _out, err = pod.communicate(timeout=180)
        assert pod.returncode == 0, err
    reports = [json.loads((tmp_path / f"migration/report-{i}-of-{shards}.json").read_text()) for i in range(shards)]
    store = MemoryOSStore(tmp_path / "memoryos.db")
    by_ns: dict[str, set[str]] = {}
    for record in store.scan():
        by_ns.setdefault(record.namespace, set()).add(record.metadata["migration"]["run_id"])
    assert sorted(by_ns) == sorted(namespaces)  # every namespace migrated ...
    assert all(len(runs) == 1 for runs in by_ns.values())  # ... by exactly one shard
    assert {run for runs in by_ns.values() for run in runs} <= {rep["run_id"] for rep in reports}
    total = sum(1 for _ in (tmp_path / "export.jsonl").open())
    assert sum(rep["migrated"] for rep in reports) == store.count() == total
    assert sorted(rep["shard"] for rep in reports) == [f"{i}/{shards}" for i in range(shards)]

    done = subprocess.run(["/bin/sh", "-c", shell(rec)], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "parity: yes" in done.stdout, done.stdout + done.stderr
    assert json.loads((tmp_path / "reconcile/reconcile.json").read_text())["report"]["parity"] is True


def test_the_validators_catch_a_broken_object():
    _, r = rendered("staging", settings("staging", ("gateway",)))
    objs = {o["kind"]: o for o in r.manifests}
    broken_dep = json.loads(json.dumps(objs["Deployment"]))
    broken_dep["spec"]["replica"] = broken_dep["spec"].pop("replicas")  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken_dep)
    broken_mon = json.loads(json.dumps(objs["ServiceMonitor"]))
    broken_mon["spec"]["endpoints"] = "http"
    with pytest.raises(AssertionError, match="ServiceMonitor"):
        validate(broken_mon)


def test_distributed_locust_as_rendered_gives_a_verdict_from_the_workers_samples(tmp_path):
    """The master and worker containers' own commands, run here on loopback: /results, /locust and the
    plan mount mapped to local directories, the gateway Service to a local gateway. The one change: the
    master's final idle (`exec sleep`, which keeps a finished run from repeating) becomes `exit 0`."""
    from cutover.judge.evidence import load_evidence_file
    from cutover.judge.samples import load_samples

    from .gatewayproc import gateway, project_copy

    project = project_copy(tmp_path, analysis={"min_samples": 100})
    s = settings(
        "staging",
        ("loadtest",),
        phase="ramp-50",
        loadtest={"workers": 2, "users": 8, "spawnRate": 8, "runTime": "10s", "runId": "t1"},
    )
    plan, r = rendered("staging", s)
    n = workloads.names(plan)
    objs = {(o["kind"], o["metadata"]["name"]): o for o in r.manifests}
    (master,) = workloads.pod_spec(objs[("Deployment", n["master"])])["containers"]
    (worker,) = workloads.pod_spec(objs[("Deployment", n["worker"])])["containers"]
    assert objs[("Deployment", n["worker"])]["spec"]["replicas"] == 2
    results = tmp_path / "results"
    with gateway(tmp_path, "ramp-50", project) as g:

        def local(text: str) -> str:
            return (
                text.replace(workloads.gateway_url(plan, StackConfig.model_validate(s)), g.url)
                .replace("/results/", f"{results}/")
                .replace("/locust/", f"{ROOT / 'loadtests'}/")
                .replace(f"{workloads.PLAN_DIR}/", f"{project}/")
                .replace(n["master"], "127.0.0.1")
            )

        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        script = local(master["command"][2]).replace("exec sleep 2147483647", "exit 0")
        m = subprocess.Popen(
            master["command"][:2] + [script],
            env=env,
            cwd=ROOT / "loadtests",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        workers = [
            subprocess.Popen(
                [local(a) for a in worker["command"]],
                env=env,
                cwd=ROOT / "loadtests",
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        try:
            out, _ = m.communicate(timeout=120)
        finally:
            for w in workers:
                w.terminate()
                w.wait(30)
    assert m.returncode == 0, out[-3000:]
    run = results / "runs" / "canary-t1"
    assert (run / "done").is_file() and (run / "stats_stats.csv").is_file()
    worker_files = [p for p in run.glob("samples.*.jsonl")]
    assert len(worker_files) == 2 and all(p.stat().st_size > 0 for p in worker_files)  # one file per worker
    data = load_samples(sorted(run.glob("samples*.jsonl")))
    assert {x.cohort for x in data} == {"control", "treatment"} and len(data) > 200
    ev = load_evidence_file(run / "analysis" / "verdict.json")
    assert ev.phase == "ramp-50" and ev.samples["control"] + ev.samples["treatment"] == len(data)
    assert (run / "analysis" / "report.md").is_file()


def test_render_cli_writes_the_parts_and_says_where_the_admin_secret_comes_from(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "rollout.yaml").write_text((ROOT / "rollout.yaml").read_text())
    cfg = {f"memoryos-rollout:{k}": v for k, v in settings("staging", ("gateway", "migration")).items()}
    (tmp_path / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": cfg}))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cutover.cli",
            "render",
            "--stack",
            "lab",
            "--project-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (tmp_path / "out" / "manifests").iterdir())
    assert "deployment-memoryos-rollout-gateway.yaml" in files and "job-memoryos-rollout-migrate.yaml" in files
    assert not any(f.startswith("secret-") for f in files)
    assert "not written: Secret memoryos-rollout-gateway-admin" in r.stderr and "--secret" in r.stderr
