"""What every scale-out part shares: object names, labels and selectors, containers, the plan
ConfigMap and its volume, Secrets without data, the gateway and controller URLs."""

from __future__ import annotations

from typing import Any

import yaml

from cutover.plan.model import Plan
from cutover.plan.stacks import Resources, StackConfig, Target
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


def part_meta(name: str, t: Target, component: str, **extra: str) -> dict[str, Any]:
    """Objects carry their pods' selector labels too (a ServiceMonitor finds the Service by them)."""
    plan, stack = t.plan, t.stack
    return metadata(name, t, **selector_labels(plan, stack, component), **extra)


def selector_labels(plan: Plan, stack: str, component: str) -> dict[str, str]:
    """Stable across phases (a Deployment's selector is immutable): no phase label here."""
    return {
        "app.kubernetes.io/name": plan.name,
        "app.kubernetes.io/instance": stack,
        "app.kubernetes.io/component": component,
    }


def pod_labels(t: Target, component: str) -> dict[str, str]:
    plan, stack = t.plan, t.stack
    return {**stack_labels(t), **selector_labels(plan, stack, component)}


def deployment(
    name: str,
    t: Target,
    component: str,
    replicas: int,
    pod: dict[str, Any],
    *,
    strategy: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment of one part: selected by the part's stable labels, its pods labelled as the stack's."""
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": selector_labels(t.plan, t.stack, component)},
    }
    if strategy is not None:
        spec["strategy"] = strategy
    template_meta: dict[str, Any] = {"labels": pod_labels(t, component)}
    if annotations is not None:
        template_meta["annotations"] = annotations
    spec["template"] = {"metadata": template_meta, "spec": pod}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": part_meta(name, t, component), "spec": spec}


def service(name: str, t: Target, component: str, port_name: str, port: int, **meta: str) -> dict[str, Any]:
    """The Service in front of a part's pods: one TCP port, to the container port of the same name."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": part_meta(name, t, component, **meta),
        "spec": {
            "selector": selector_labels(t.plan, t.stack, component),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
        },
    }


def resources_of(r: Resources) -> dict[str, Any]:
    return {"requests": dict(r.requests), "limits": dict(r.limits)}


def pod_container(
    name: str, cfg: StackConfig, command: list[str], resources: Resources, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "image": cfg.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "resources": resources_of(resources),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
        },
        **extra,
    }


def sh_command(*lines: str) -> list[str]:
    """A POSIX shell script as a container command: `set -eu`, one step per line."""
    return ["/bin/sh", "-c", "\n".join(("set -eu", *lines))]


def plan_volume(plan: Plan) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"name": "plan", "configMap": {"name": names(plan)["plan"]}},
        {"name": "plan", "mountPath": PLAN_DIR, "readOnly": True},
    )


def any_enabled(cfg: StackConfig) -> bool:
    return cfg.gateway.enabled or cfg.loadtest.enabled or cfg.nightly.enabled or cfg.migration.enabled


def gateway_url(plan: Plan, cfg: StackConfig) -> str:
    """The stack's gateway as the load tests reach it (the Service in the stack's namespace)."""
    return f"http://{names(plan)['gateway']}.{cfg.namespace}.svc:{cfg.gateway.port}"


def plan_config_map(t: Target) -> dict[str, Any]:
    """The effective plan, mounted where `cutover analyze --file` and `cutover serve` read it."""
    plan = t.plan
    text = yaml.safe_dump(plan.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": part_meta(names(plan)["plan"], t, "plan"),
        "data": {"rollout.yaml": text},
    }


def secret_without_data(name: str, config_key: str, t: Target, component: str) -> dict[str, Any]:
    meta = part_meta(name, t, component)
    meta["annotations"][SECRET_CONFIG_ANNOTATION] = config_key
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a Deployment, Job or CronJob (None for other kinds)."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec") if obj["kind"] in ("Deployment", "Job", "CronJob") else None


def controller_url(plan: Plan, cfg: StackConfig) -> str:
    return f"http://{names(plan)['controller']}.{cfg.namespace}.svc:{cfg.controller.port}/alertmanager"


def locust_volumes(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = names(plan)
    plan_vol, plan_mount = plan_volume(plan)
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


def analyze_args(
    stack: str, plan_file: str, *, phase: str | None = None, kind: str | None = None, out: str | None = None
) -> list[str]:
    """`cutover analyze`'s arguments (without the sample files), as every runner of the judge passes
    them: the Locust master, the nightly Job and the rehearsal. No phase: the samples carry it."""
    args = ["analyze", "--stack", stack, *(["--phase", phase] if phase else []), *(["--kind", kind] if kind else [])]
    return [*args, "--file", plan_file, *(["--out", out] if out else [])]
