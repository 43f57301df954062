"""Scale-out on Kubernetes: the gateway, distributed Locust, the nightly comparison and the sharded
migration, as plain manifests built from the plan and the stack config.

Each part is switched on per stack (`memoryos-rollout:gateway`, `:loadtest`, `:nightly`,
`:migration`, each with `enabled: true`). `render()` adds these objects to the same manifest list as
the flags, rules and dashboards, so `cutover render` and the Pulumi program declare the same things.

The one exception is the gateway's admin token: it is a Pulumi *secret* config value
(`pulumi config set --secret memoryos-rollout:adminToken ...`), so the Secret that carries it is
built here without data (`admin_secret`) and only the Pulumi program fills it in; rendered files
never hold the token.
"""

from __future__ import annotations

import shlex

import yaml

from cutover.plan.model import Plan
from cutover.plan.project import loadtests_dir
from cutover.plan.stacks import Resources, StackConfig
from cutover.render.locust import headless_args, scenario_file
from cutover.render.manifests import labels as stack_labels
from cutover.render.manifests import metadata

SERVICE_MONITOR_API = "monitoring.coreos.com/v1"
FEATURE_FLAG_SOURCE_API = "core.openfeature.dev/v1beta1"
LOCUSTFILES = ("workload.py", "canary.py", "soak.py", "baseline.py")
LOCUST_DIR = "/locust"  # the locustfiles ConfigMap is mounted here
PLAN_DIR = "/etc/cutover"  # the plan ConfigMap is mounted here
ADMIN_TOKEN_KEY = "token"
SECRET_CONFIG_KEY = "adminToken"  # memoryos-rollout:adminToken, a Pulumi secret
WEBHOOK_CONFIG_KEY = "webhookSecret"  # memoryos-rollout:webhookSecret, a Pulumi secret
SECRET_CONFIG_ANNOTATION = "cutover.io/secret-config"  # which secret config value fills a Secret
ALERTMANAGER_CONFIG_API = "monitoring.coreos.com/v1alpha1"
WEBHOOK_DIR = "/etc/cutover-webhook"


def names(plan: Plan) -> dict[str, str]:
    """Object names, one place: tests and docs use them too."""
    n = plan.name
    return {
        "plan": f"{n}-plan",
        "gateway": f"{n}-gateway",
        "admin": f"{n}-gateway-admin",
        "flagsource": f"{n}-flagsource",
        "flags": f"{n}-flags",
        "locustfiles": f"{n}-locustfiles",
        "master": f"{n}-locust-master",
        "worker": f"{n}-locust-worker",
        "results": f"{n}-loadtest-results",
        "nightly": f"{n}-nightly-canary",
        "migrate": f"{n}-migrate",
        "reconcile": f"{n}-reconcile",
        "controller": f"{n}-controller",
        "webhook": f"{n}-controller-webhook",
    }


def _meta(name: str, plan: Plan, stack: str, cfg: StackConfig, component: str, **extra: str) -> dict:
    """Objects carry their pods' selector labels too (a ServiceMonitor finds the Service by them)."""
    return metadata(name, plan, stack, cfg, **_selector(plan, stack, component), **extra)


def _selector(plan: Plan, stack: str, component: str) -> dict[str, str]:
    """Stable across phases (a Deployment's selector is immutable): no phase label here."""
    return {
        "app.kubernetes.io/name": plan.name,
        "app.kubernetes.io/instance": stack,
        "app.kubernetes.io/component": component,
    }


def _pod_labels(plan: Plan, stack: str, cfg: StackConfig, component: str) -> dict[str, str]:
    return {**stack_labels(plan, stack, cfg), **_selector(plan, stack, component)}


def _resources(r: Resources) -> dict:
    return {"requests": dict(r.requests), "limits": dict(r.limits)}


def _container(name: str, cfg: StackConfig, command: list[str], resources: Resources, **extra) -> dict:
    return {
        "name": name,
        "image": cfg.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "resources": _resources(resources),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
        },
        **extra,
    }


def _sh(*lines: str) -> list[str]:
    """A POSIX shell script as a container command: `set -eu`, one step per line."""
    return ["/bin/sh", "-c", "\n".join(("set -eu", *lines))]


def _plan_volume(plan: Plan) -> tuple[dict, dict]:
    return (
        {"name": "plan", "configMap": {"name": names(plan)["plan"]}},
        {"name": "plan", "mountPath": PLAN_DIR, "readOnly": True},
    )


def any_enabled(cfg: StackConfig) -> bool:
    return cfg.gateway.enabled or cfg.loadtest.enabled or cfg.nightly.enabled or cfg.migration.enabled


def gateway_url(plan: Plan, cfg: StackConfig) -> str:
    """The stack's gateway as the load tests reach it (the Service in the stack's namespace)."""
    return f"http://{names(plan)['gateway']}.{cfg.namespace}.svc:{cfg.gateway.port}"


# -- shared -----------------------------------------------------------------------------------------


def plan_config_map(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """The effective plan, mounted where `cutover analyze --file` and `cutover serve` read it."""
    text = yaml.safe_dump(plan.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(names(plan)["plan"], plan, stack, cfg, "plan"),
        "data": {"rollout.yaml": text},
    }


# -- the gateway ------------------------------------------------------------------------------------


def feature_flag_source(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """Tells the OpenFeature Operator to inject a flagd sidecar fed by this stack's FeatureFlag."""
    n = names(plan)
    return {
        "apiVersion": FEATURE_FLAG_SOURCE_API,
        "kind": "FeatureFlagSource",
        "metadata": _meta(n["flagsource"], plan, stack, cfg, "gateway"),
        "spec": {
            "sources": [{"source": f"{cfg.namespace}/{n['flags']}", "provider": "kubernetes"}],
            "port": cfg.gateway.flagdPort,
            "probesEnabled": True,
        },
    }


def admin_secret(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """The admin token's Secret, without data: the Pulumi program fills `stringData.token` from the
    secret config value; `cutover render` never writes it."""
    return _secret(names(plan)["admin"], SECRET_CONFIG_KEY, plan, stack, cfg, "gateway")


def _secret(name: str, config_key: str, plan: Plan, stack: str, cfg: StackConfig, component: str) -> dict:
    meta = _meta(name, plan, stack, cfg, component)
    meta["annotations"][SECRET_CONFIG_ANNOTATION] = config_key
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta}


def gateway_deployment(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    g, n = cfg.gateway, names(plan)
    plan_vol, plan_mount = _plan_volume(plan)
    command = [
        "cutover",
        "serve",
        "--stack",
        stack,
        "--host",
        "0.0.0.0",
        "--port",
        str(g.port),
        "--plan",
        f"{PLAN_DIR}/rollout.yaml",
        "--flagd",
        f"localhost:{g.flagdPort}",
        "--legacy",
        g.legacyUrl,
        "--memoryos",
        g.memoryosUrl,
        "--data-dir",
        "/var/lib/cutover",
    ]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    container = _container(
        "gateway",
        cfg,
        command,
        g.resources,
        ports=[{"name": "http", "containerPort": g.port, "protocol": "TCP"}],
        env=[
            {"name": "CUTOVER_ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {"name": n["admin"], "key": ADMIN_TOKEN_KEY}}}
        ],
        livenessProbe=probe,
        readinessProbe={**probe, "httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        startupProbe={**probe, "periodSeconds": 2, "failureThreshold": 30},
        volumeMounts=[plan_mount, {"name": "data", "mountPath": "/var/lib/cutover"}],
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(n["gateway"], plan, stack, cfg, "gateway"),
        "spec": {
            "replicas": g.replicas,
            "selector": {"matchLabels": _selector(plan, stack, "gateway")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": _pod_labels(plan, stack, cfg, "gateway"),
                    "annotations": {
                        "openfeature.dev/enabled": "true",
                        "openfeature.dev/featureflagsource": n["flagsource"],
                        "cutover.io/plan-digest": plan.digest(),
                    },
                },
                "spec": {
                    # the outbox drains on SIGTERM before the pod goes; it is on disk if it cannot
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                    "volumes": [plan_vol, {"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def gateway_service(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(names(plan)["gateway"], plan, stack, cfg, "gateway"),
        "spec": {
            "selector": _selector(plan, stack, "gateway"),
            "ports": [{"name": "http", "port": cfg.gateway.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def gateway_pdb(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(names(plan)["gateway"], plan, stack, cfg, "gateway"),
        "spec": {
            "minAvailable": cfg.gateway.minAvailable,
            "selector": {"matchLabels": _selector(plan, stack, "gateway")},
        },
    }


def gateway_service_monitor(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """Scraped by the stack's kube-prometheus-stack release (it selects ServiceMonitors by `release`)."""
    return {
        "apiVersion": SERVICE_MONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": _meta(names(plan)["gateway"], plan, stack, cfg, "gateway", release=cfg.release),
        "spec": {
            "selector": {"matchLabels": _selector(plan, stack, "gateway")},
            "namespaceSelector": {"matchNames": [cfg.namespace]},
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": cfg.gateway.scrapeInterval,
                    "scrapeTimeout": cfg.gateway.scrapeInterval,
                }
            ],
        },
    }


# -- distributed Locust -----------------------------------------------------------------------------


def locustfiles_config_map(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    data = {f: (loadtests_dir() / f).read_text(encoding="utf-8") for f in LOCUSTFILES}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(names(plan)["locustfiles"], plan, stack, cfg, "loadtest"),
        "data": data,
    }


def results_claim(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """One volume for load-test results and nightly verdicts: workers write samples, analyze reads them."""
    lt = cfg.loadtest
    spec: dict = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": lt.resultsSize}}}
    if lt.storageClass:
        spec["storageClassName"] = lt.storageClass
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(names(plan)["results"], plan, stack, cfg, "loadtest"),
        "spec": spec,
    }


def _locust_volumes(plan: Plan) -> tuple[list[dict], list[dict]]:
    n = names(plan)
    plan_vol, plan_mount = _plan_volume(plan)
    return (
        [
            {"name": "locustfiles", "configMap": {"name": n["locustfiles"]}},
            {"name": "results", "persistentVolumeClaim": {"claimName": n["results"]}},
            plan_vol,
        ],
        [
            {"name": "locustfiles", "mountPath": LOCUST_DIR, "readOnly": True},
            {"name": "results", "mountPath": "/results"},
            plan_mount,
        ],
    )


def loadtest_run_dir(cfg: StackConfig) -> str:
    return f"/results/runs/{cfg.loadtest.scenario}-{cfg.loadtest.runId}"


def locust_master(plan: Plan, stack: str, cfg: StackConfig) -> list[dict]:
    """The master runs one headless run per `runId` (bounded by `runTime`), then judges it and idles,
    so a restart never repeats a finished run; change `runId` to start another."""
    lt, n = cfg.loadtest, names(plan)
    run = loadtest_run_dir(cfg)
    kind = {"canary": "verdict", "soak": "soak", "baseline": "baseline"}[lt.scenario]
    locust = [
        "locust",
        *headless_args(
            scenario_file(LOCUST_DIR, lt.scenario),
            host=gateway_url(plan, cfg),
            users=lt.users,
            spawn_rate=lt.spawnRate,
            run_time=lt.runTime,
            samples=f"{run}/samples.jsonl",
            csv=f"{run}/stats",
        ),
        "--master",
        "--expect-workers",
        str(lt.workers),
    ]
    analyze = [
        "cutover",
        "analyze",
        "--stack",
        stack,
        "--kind",
        kind,
        "--file",
        f"{PLAN_DIR}/rollout.yaml",
        "--out",
        f"{run}/analysis",
    ]
    command = _sh(
        f"mkdir -p {run}",
        f"if [ ! -e {run}/done ]; then",
        f"  {shlex.join(locust)}",
        # HOLD/ROLLBACK exit non-zero; the verdict is the result
        f"  {shlex.join(analyze)} {run}/samples*.jsonl || true",
        f"  touch {run}/done",
        "fi",
        f'echo "run {lt.runId} finished: {run}/analysis/verdict.json"',
        "exec sleep 2147483647",
    )
    vols, mounts = _locust_volumes(plan)
    sel = _selector(plan, stack, "locust-master")
    container = _container(
        "master",
        cfg,
        command,
        lt.resources,
        volumeMounts=mounts,
        workingDir=LOCUST_DIR,
        ports=[{"name": "locust", "containerPort": 5557, "protocol": "TCP"}],
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(n["master"], plan, stack, cfg, "locust-master"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": sel},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {
                    "labels": _pod_labels(plan, stack, cfg, "locust-master"),
                    "annotations": {"cutover.io/run-id": lt.runId},
                },
                "spec": {"containers": [container], "volumes": vols},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(n["master"], plan, stack, cfg, "locust-master"),
        "spec": {
            "selector": sel,
            "ports": [{"name": "locust", "port": 5557, "targetPort": "locust", "protocol": "TCP"}],
        },
    }
    return [deployment, service]


def locust_workers(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    lt, n = cfg.loadtest, names(plan)
    run = loadtest_run_dir(cfg)
    command = [
        "locust",
        "-f",
        scenario_file(LOCUST_DIR, lt.scenario),
        "--worker",
        "--master-host",
        n["master"],
        "--samples",
        f"{run}/samples.jsonl",
    ]
    vols, mounts = _locust_volumes(plan)
    container = _container("worker", cfg, command, lt.resources, volumeMounts=mounts, workingDir=LOCUST_DIR)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(n["worker"], plan, stack, cfg, "locust-worker"),
        "spec": {
            "replicas": lt.workers,
            "selector": {"matchLabels": _selector(plan, stack, "locust-worker")},
            "template": {
                "metadata": {
                    "labels": _pod_labels(plan, stack, cfg, "locust-worker"),
                    "annotations": {"cutover.io/run-id": lt.runId},
                },
                "spec": {"containers": [container], "volumes": vols},
            },
        },
    }


# -- nightly comparison -----------------------------------------------------------------------------


def nightly_cron_job(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """Each night: the canary scenario headless against the gateway, then the judge; every night's
    samples, verdict.json and report stay under /results/nightly/<UTC date>."""
    nt, n = cfg.nightly, names(plan)
    night = "/results/nightly/$(date -u +%Y-%m-%dT%H%MZ)"
    loadtest = [
        "cutover",
        "loadtest",
        "canary",
        "--host",
        gateway_url(plan, cfg),
        "--allow-remote",
        "-u",
        str(nt.users),
        "-t",
        nt.runTime,
        "--processes",
        str(nt.processes),
    ]
    analyze = ["cutover", "analyze", "--stack", stack, "--file", f"{PLAN_DIR}/rollout.yaml"]
    command = _sh(
        f'night="{night}"',
        'mkdir -p "$night"',
        f'{shlex.join(loadtest)} --samples "$night/samples.jsonl"',
        f'status=0; {shlex.join(analyze)} --out "$night" "$night"/samples*.jsonl || status=$?',
        'ln -sfn "$night" /results/nightly/latest',
        'echo "verdict: $night/verdict.json (exit $status)"',
        'exit "$status"',  # HOLD (1) or ROLLBACK (3) marks the night's Job failed, so it is seen
    )
    vols, mounts = _locust_volumes(plan)
    container = _container("nightly-canary", cfg, command, nt.resources, volumeMounts=mounts, workingDir=LOCUST_DIR)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(n["nightly"], plan, stack, cfg, "nightly"),
        "spec": {
            "schedule": nt.schedule,
            "timeZone": nt.timeZone,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": nt.keepVerdicts,
            "failedJobsHistoryLimit": nt.keepVerdicts,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": _pod_labels(plan, stack, cfg, "nightly")},
                        "spec": {"restartPolicy": "Never", "containers": [container], "volumes": vols},
                    },
                }
            },
        },
    }


# -- sharded migration ------------------------------------------------------------------------------


def _data_volume(cfg: StackConfig) -> tuple[dict, dict]:
    return (
        {"name": "data", "persistentVolumeClaim": {"claimName": cfg.migration.dataClaim}},
        {"name": "data", "mountPath": "/data"},
    )


def migration_job(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """An Indexed Job: pod i of n migrates the namespaces whose hash mod n is i (`--shard i/n`)."""
    m, n = cfg.migration, names(plan)
    migrate = ["cutover", "migrate", "--from", m.source, "--to", m.target, "--batch", str(m.batch)]
    shard = f"$JOB_COMPLETION_INDEX-of-{m.shards}"
    command = _sh(
        f'exec {shlex.join(migrate)} --shard "$JOB_COMPLETION_INDEX/{m.shards}" '
        f'--report "/data/migration/report-{shard}.json" --quarantine "/data/migration/quarantine-{shard}.jsonl"'
    )
    vol, mount = _data_volume(cfg)
    container = _container("migrate", cfg, command, m.resources, volumeMounts=[mount])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(n["migrate"], plan, stack, cfg, "migration"),
        "spec": {
            "completionMode": "Indexed",
            "completions": m.shards,
            "parallelism": m.shards,
            "backoffLimitPerIndex": m.backoffLimit,
            "maxFailedIndexes": 0,
            "template": {
                "metadata": {"labels": _pod_labels(plan, stack, cfg, "migration")},
                "spec": {"restartPolicy": "Never", "containers": [container], "volumes": [vol]},
            },
        },
    }


def reconcile_job(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """After every shard: per namespace and tier, counts and checksums; the Job fails without parity."""
    m, n = cfg.migration, names(plan)
    reconcile = ["cutover", "reconcile", "--source", m.source, "--target", m.target, "--report", "/data/reconcile"]
    vol, mount = _data_volume(cfg)
    container = _container("reconcile", cfg, _sh(f"exec {shlex.join(reconcile)}"), m.resources, volumeMounts=[mount])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(n["reconcile"], plan, stack, cfg, "migration"),
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": _pod_labels(plan, stack, cfg, "reconcile")},
                "spec": {"restartPolicy": "Never", "containers": [container], "volumes": [vol]},
            },
        },
    }


def build(plan: Plan, stack: str, cfg: StackConfig) -> list[dict]:
    """Every scale-out object this stack enables (none when all parts are off)."""
    objs: list[dict] = []
    if cfg.gateway.enabled or cfg.loadtest.enabled or cfg.nightly.enabled or cfg.controller.enabled:
        objs.append(plan_config_map(plan, stack, cfg))
    if cfg.gateway.enabled:
        objs += [
            feature_flag_source(plan, stack, cfg),
            gateway_deployment(plan, stack, cfg),
            gateway_service(plan, stack, cfg),
            gateway_pdb(plan, stack, cfg),
            gateway_service_monitor(plan, stack, cfg),
        ]
    if cfg.loadtest.enabled or cfg.nightly.enabled:
        objs += [locustfiles_config_map(plan, stack, cfg), results_claim(plan, stack, cfg)]
    if cfg.loadtest.enabled:
        objs += [*locust_master(plan, stack, cfg), locust_workers(plan, stack, cfg)]
    if cfg.nightly.enabled:
        objs.append(nightly_cron_job(plan, stack, cfg))
    if cfg.migration.enabled:
        objs += [migration_job(plan, stack, cfg), reconcile_job(plan, stack, cfg)]
    if cfg.controller.enabled:
        objs += controller_objects(plan, stack, cfg)
    for obj in objs:
        pod = pod_spec(obj)
        if pod is not None:  # volumes written by uid 10001: the results and data volumes, the outbox
            pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}
    return objs


def pod_spec(obj: dict) -> dict | None:
    """The pod spec inside a Deployment, Job or CronJob (None for other kinds)."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec") if obj["kind"] in ("Deployment", "Job", "CronJob") else None


def secrets(plan: Plan, stack: str, cfg: StackConfig) -> list[dict]:
    """Secrets whose values only Pulumi holds (filled by the program from the secret config value
    their annotation names, never rendered); each holds its value under the key `token`."""
    out = [admin_secret(plan, stack, cfg)] if cfg.gateway.enabled else []
    if cfg.controller.enabled:
        out.append(_secret(names(plan)["webhook"], WEBHOOK_CONFIG_KEY, plan, stack, cfg, "controller"))
    return out


# -- the rollback controller ------------------------------------------------------------------------


def controller_url(plan: Plan, cfg: StackConfig) -> str:
    return f"http://{names(plan)['controller']}.{cfg.namespace}.svc:{cfg.controller.port}/alertmanager"


def controller_objects(plan: Plan, stack: str, cfg: StackConfig) -> list[dict]:
    """`cutover controller` in the cluster: it patches only the stack's FeatureFlag (its Role names
    that one object), and Alertmanager reaches it through the AlertmanagerConfig below."""
    c, n = cfg.controller, names(plan)
    meta = lambda name: _meta(name, plan, stack, cfg, "controller")  # noqa: E731
    plan_vol, plan_mount = _plan_volume(plan)
    command = [
        "cutover", "controller", "--stack", stack, "--plan", f"{PLAN_DIR}/rollout.yaml",
        "--featureflag", f"{cfg.namespace}/{n['flags']}", "--secret-file", f"{WEBHOOK_DIR}/{ADMIN_TOKEN_KEY}",
        "--host", "0.0.0.0", "--port", str(c.port), "--log", "/var/log/cutover/rollbacks.jsonl",
        *(["--hold-down", c.holdDown] if c.holdDown else []),
    ]  # fmt: skip
    container = _container(
        "controller", cfg, command, c.resources,
        ports=[{"name": "http", "containerPort": c.port, "protocol": "TCP"}],
        readinessProbe={"httpGet": {"path": "/status", "port": "http"}, "periodSeconds": 10},
        volumeMounts=[plan_mount, {"name": "webhook", "mountPath": WEBHOOK_DIR, "readOnly": True},
                      {"name": "log", "mountPath": "/var/log/cutover"}],
    )  # fmt: skip
    sel = _selector(plan, stack, "controller")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(n["controller"])},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(n["controller"]),
            "rules": [{"apiGroups": ["core.openfeature.dev"], "resources": ["featureflags"],
                       "resourceNames": [n["flags"]], "verbs": ["get", "patch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(n["controller"]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": n["controller"]},
            "subjects": [{"kind": "ServiceAccount", "name": n["controller"], "namespace": cfg.namespace}],
        },
        {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(n["controller"]),
            "spec": {
                "replicas": 1,  # one controller: the hold-down lives in its memory
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": sel},
                "template": {
                    "metadata": {"labels": _pod_labels(plan, stack, cfg, "controller")},
                    "spec": {
                        "serviceAccountName": n["controller"],
                        "containers": [container],
                        "volumes": [plan_vol, {"name": "webhook", "secret": {"secretName": n["webhook"]}},
                                    {"name": "log", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1", "kind": "Service", "metadata": meta(n["controller"]),
            "spec": {"selector": sel,
                     "ports": [{"name": "http", "port": c.port, "targetPort": "http", "protocol": "TCP"}]},
        },
        alertmanager_config(plan, stack, cfg),
    ]  # fmt: skip


def alertmanager_config(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """The route of the rollback-labelled abort alerts to the controller, for an Alertmanager run by
    the prometheus-operator (labelled for the stack's kube-prometheus-stack release)."""
    c, n = cfg.controller, names(plan)
    meta = _meta(n["controller"], plan, stack, cfg, "controller", release=cfg.release)
    return {
        "apiVersion": ALERTMANAGER_CONFIG_API, "kind": "AlertmanagerConfig", "metadata": meta,
        "spec": {
            "route": {
                "receiver": n["controller"], "groupBy": ["alertname"], "groupWait": c.groupWait,
                "groupInterval": c.groupWait, "repeatInterval": c.repeatInterval,
                "matchers": [{"name": "action", "value": "rollback", "matchType": "="},
                             {"name": "stack", "value": stack, "matchType": "="}],
            },
            "receivers": [{
                "name": n["controller"],
                "webhookConfigs": [{
                    "url": controller_url(plan, cfg), "sendResolved": False,
                    "httpConfig": {"authorization": {"type": "Bearer",
                                                     "credentials": {"name": n["webhook"], "key": ADMIN_TOKEN_KEY}}},
                }],
            }],
        },
    }  # fmt: skip


def alertmanager_snippet(plan: Plan, stack: str, cfg: StackConfig) -> dict:
    """The same route and receiver for an Alertmanager configured by hand (alertmanager.yml):
    merge `route.routes` and `receivers`; the credentials file holds the webhook secret."""
    c, n = cfg.controller, names(plan)
    return {
        "route": {"routes": [{
            "receiver": n["controller"], "group_by": ["alertname"], "group_wait": c.groupWait,
            "group_interval": c.groupWait, "repeat_interval": c.repeatInterval,
            "matchers": ['action="rollback"', f'stack="{stack}"'], "continue": True,
        }]},
        "receivers": [{
            "name": n["controller"],
            "webhook_configs": [{
                "url": controller_url(plan, cfg), "send_resolved": False,
                "http_config": {"authorization": {"credentials_file": "/etc/alertmanager/secrets/cutover-webhook"}},
            }],
        }],
    }  # fmt: skip
