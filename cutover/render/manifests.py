"""Kubernetes objects that wrap the renderings: one place builds them for `render` and Pulumi."""

from __future__ import annotations

from typing import Any

from cutover.plan.stacks import Target

FEATURE_FLAG_API = "core.openfeature.dev/v1beta1"
PROMETHEUS_RULE_API = "monitoring.coreos.com/v1"


def labels(t: Target) -> dict[str, str]:
    """The stack's labels plus cutover's own; cutover's win on conflict. No phase: a phase step
    changes only the objects whose content depends on the phase (the FeatureFlag, which carries a
    `cutover.io/phase` label, and the PrometheusRule), never a workload or a dashboard."""
    plan, stack, cfg = t.plan, t.stack, t.cfg
    return {
        **cfg.labels,
        "app.kubernetes.io/managed-by": "cutover",
        "cutover.io/plan": plan.name,
        "cutover.io/stack": stack,
    }


def metadata(name: str, t: Target, **extra_labels: str) -> dict[str, Any]:
    plan, cfg = t.plan, t.cfg
    return {
        "name": name,
        "namespace": cfg.namespace,
        "labels": {**labels(t), **extra_labels},
        "annotations": {"cutover.io/plan-digest": plan.digest()},
    }


def feature_flag(t: Target, flags_doc: dict[str, Any]) -> dict[str, Any]:
    """The OpenFeature Operator FeatureFlag that carries the flag set for flagd."""
    plan, phase = t.plan, t.phase
    spec = {k: v for k, v in flags_doc.items() if k != "$schema"}
    return {
        "apiVersion": FEATURE_FLAG_API,
        "kind": "FeatureFlag",
        "metadata": metadata(f"{plan.name}-flags", t, **{"cutover.io/phase": phase}),
        "spec": {"flagSpec": spec},
    }


def prometheus_rule(t: Target, rules: dict[str, Any]) -> dict[str, Any]:
    """Rules for kube-prometheus-stack, which loads only PrometheusRules labelled with its release."""
    plan, cfg = t.plan, t.cfg
    return {
        "apiVersion": PROMETHEUS_RULE_API,
        "kind": "PrometheusRule",
        "metadata": metadata(f"{plan.name}-rules", t, release=cfg.release),
        "spec": rules,
    }


def dashboard_config_map(t: Target, slug: str, text: str) -> dict[str, Any]:
    """A dashboard for the Grafana sidecar: label grafana_dashboard=1, folder by annotation."""
    plan, cfg = t.plan, t.cfg
    meta = metadata(f"{plan.name}-dashboard-{slug}", t, grafana_dashboard="1")
    meta["annotations"]["grafana_folder"] = cfg.grafanaFolder
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {f"{slug}.json": text}}


def file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
