"""The gateway on Kubernetes: its Deployment (with the OpenFeature Operator's flagd sidecar), Service,
PodDisruptionBudget, ServiceMonitor, FeatureFlagSource and admin-token Secret."""

from __future__ import annotations

from typing import Any

from cutover.plan.stacks import Target
from cutover.render.workloads.common import (
    ADMIN_TOKEN_KEY,
    FEATURE_FLAG_SOURCE_API,
    PLAN_DIR,
    SECRET_CONFIG_KEY,
    SERVICE_MONITOR_API,
    deployment,
    names,
    part_meta,
    plan_volume,
    pod_container,
    secret_without_data,
    selector_labels,
    service,
)


def feature_flag_source(t: Target) -> dict[str, Any]:
    """Tells the OpenFeature Operator to inject a flagd sidecar fed by this stack's FeatureFlag."""
    plan, cfg = t.plan, t.cfg
    n = names(plan)
    return {
        "apiVersion": FEATURE_FLAG_SOURCE_API,
        "kind": "FeatureFlagSource",
        "metadata": part_meta(n["flagsource"], t, "gateway"),
        "spec": {
            "sources": [{"source": f"{cfg.namespace}/{n['flags']}", "provider": "kubernetes"}],
            "port": cfg.gateway.flagdPort,
            "probesEnabled": True,
        },
    }


def admin_secret(t: Target) -> dict[str, Any]:
    """The admin token's Secret, without data: the Pulumi program fills `stringData.token` from the
    secret config value; `cutover render` never writes it."""
    plan = t.plan
    return secret_without_data(names(plan)["admin"], SECRET_CONFIG_KEY, t, "gateway")


def gateway_deployment(t: Target) -> dict[str, Any]:
    plan, stack, cfg = t.plan, t.stack, t.cfg
    g, n = cfg.gateway, names(plan)
    plan_vol, plan_mount = plan_volume(plan)
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
    container = pod_container(
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
    pod = {
        # the outbox drains on SIGTERM before the pod goes; it is on disk if it cannot
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [plan_vol, {"name": "data", "emptyDir": {}}],
    }
    return deployment(
        n["gateway"],
        t,
        "gateway",
        g.replicas,
        pod,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        annotations={
            "openfeature.dev/enabled": "true",
            "openfeature.dev/featureflagsource": n["flagsource"],
            "cutover.io/plan-digest": plan.digest(),
        },
    )


def gateway_service(t: Target) -> dict[str, Any]:
    return service(names(t.plan)["gateway"], t, "gateway", "http", t.cfg.gateway.port)


def gateway_pdb(t: Target) -> dict[str, Any]:
    plan, stack, cfg = t.plan, t.stack, t.cfg
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": part_meta(names(plan)["gateway"], t, "gateway"),
        "spec": {
            "minAvailable": cfg.gateway.minAvailable,
            "selector": {"matchLabels": selector_labels(plan, stack, "gateway")},
        },
    }


def gateway_service_monitor(t: Target) -> dict[str, Any]:
    """Scraped by the stack's kube-prometheus-stack release (it selects ServiceMonitors by `release`)."""
    plan, stack, cfg = t.plan, t.stack, t.cfg
    return {
        "apiVersion": SERVICE_MONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": part_meta(names(plan)["gateway"], t, "gateway", release=cfg.release),
        "spec": {
            "selector": {"matchLabels": selector_labels(plan, stack, "gateway")},
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
