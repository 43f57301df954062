"""Kubernetes objects that wrap the renderings: one place builds them for `render` and Pulumi."""

from __future__ import annotations

from cutover.plan.model import Plan
from cutover.plan.stacks import StackConfig

FEATURE_FLAG_API = "core.openfeature.dev/v1beta1"
PROMETHEUS_RULE_API = "monitoring.coreos.com/v1"


def labels(plan: Plan, stack: str, cfg: StackConfig) -> dict[str, str]:
    """The stack's labels plus cutover's own; cutover's win on conflict. No phase: a phase step
    changes only the objects whose content depends on the phase (the FeatureFlag, which carries a
    `cutover.io/phase` label, and the PrometheusRule), never a workload or a dashboard."""
    return {
        **cfg.labels,
        "app.kubernetes.io/managed-by": "cutover",
        "cutover.io/plan": plan.name,
        "cutover.io/stack": stack,
    }


def metadata(name: str, plan: Plan, stack: str, cfg: StackConfig, **extra_labels: str) -> dict:
    return {
        "name": name,
        "namespace": cfg.namespace,
        "labels": {**labels(plan, stack, cfg), **extra_labels},
        "annotations": {"cutover.io/plan-digest": plan.digest()},
    }


def feature_flag(plan: Plan, stack: str, cfg: StackConfig, phase: str, flags_doc: dict) -> dict:
    """The OpenFeature Operator FeatureFlag that carries the flag set for flagd."""
    spec = {k: v for k, v in flags_doc.items() if k != "$schema"}
    return {
        "apiVersion": FEATURE_FLAG_API,
        "kind": "FeatureFlag",
        "metadata": metadata(f"{plan.name}-flags", plan, stack, cfg, **{"cutover.io/phase": phase}),
        "spec": {"flagSpec": spec},
    }


def prometheus_rule(plan: Plan, stack: str, cfg: StackConfig, phase: str, rules: dict) -> dict:
    """Rules for kube-prometheus-stack, which loads only PrometheusRules labelled with its release."""
    return {
        "apiVersion": PROMETHEUS_RULE_API,
        "kind": "PrometheusRule",
        "metadata": metadata(f"{plan.name}-rules", plan, stack, cfg, release=cfg.release),
        "spec": rules,
    }


def dashboard_config_map(plan: Plan, stack: str, cfg: StackConfig, slug: str, text: str) -> dict:
    """A dashboard for the Grafana sidecar: label grafana_dashboard=1, folder by annotation."""
    meta = metadata(f"{plan.name}-dashboard-{slug}", plan, stack, cfg, grafana_dashboard="1")
    meta["annotations"]["grafana_folder"] = cfg.grafanaFolder
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {f"{slug}.json": text}}


def file_name(obj: dict) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
