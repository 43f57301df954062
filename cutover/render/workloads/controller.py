"""The rollback controller in the cluster (Deployment, Service, ServiceAccount, Role, RoleBinding) and
the route of the rollback-labelled alerts to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cutover.plan.stacks import Target
from cutover.render.workloads.common import (
    ADMIN_TOKEN_KEY,
    ALERTMANAGER_CONFIG_API,
    PLAN_DIR,
    WEBHOOK_DIR,
    controller_url,
    names,
    part_meta,
    plan_volume,
    pod_container,
    pod_labels,
    selector_labels,
    service,
)


def controller_objects(t: Target) -> list[dict[str, Any]]:
    """`cutover controller` in the cluster: it patches only the stack's FeatureFlag (its Role names
    that one object), and Alertmanager reaches it through the AlertmanagerConfig below."""
    plan, stack, cfg = t.plan, t.stack, t.cfg
    c, n = cfg.controller, names(plan)
    meta: Callable[[str], dict[str, Any]] = lambda name: part_meta(name, t, "controller")  # noqa: E731
    plan_vol, plan_mount = plan_volume(plan)
    command = [
        "cutover", "controller", "--stack", stack, "--plan", f"{PLAN_DIR}/rollout.yaml",
        "--featureflag", f"{cfg.namespace}/{n['flags']}", "--secret-file", f"{WEBHOOK_DIR}/{ADMIN_TOKEN_KEY}",
        "--host", "0.0.0.0", "--port", str(c.port), "--log", "/var/log/cutover/rollbacks.jsonl",
        *(["--hold-down", c.holdDown] if c.holdDown else []),
    ]  # fmt: skip
    container = pod_container(
        "controller", cfg, command, c.resources,
        ports=[{"name": "http", "containerPort": c.port, "protocol": "TCP"}],
        readinessProbe={"httpGet": {"path": "/status", "port": "http"}, "periodSeconds": 10},
        volumeMounts=[plan_mount, {"name": "webhook", "mountPath": WEBHOOK_DIR, "readOnly": True},
                      {"name": "log", "mountPath": "/var/log/cutover"}],
    )  # fmt: skip
    sel = selector_labels(plan, stack, "controller")
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
                    "metadata": {"labels": pod_labels(t, "controller")},
                    "spec": {
                        "serviceAccountName": n["controller"],
                        "containers": [container],
                        "volumes": [plan_vol, {"name": "webhook", "secret": {"secretName": n["webhook"]}},
                                    {"name": "log", "emptyDir": {}}],
                    },
                },
            },
        },
        service(n["controller"], t, "controller", "http", c.port),
        alertmanager_config(t),
    ]  # fmt: skip


@dataclass(frozen=True)
class ControllerRoute:
    """The one route of alerts to the rollback controller, in both shapes Alertmanager is configured
    in: the prometheus-operator's AlertmanagerConfig (camelCase) and alertmanager.yml (snake_case)."""

    receiver: str
    url: str
    group_wait: str
    group_interval: str
    repeat_interval: str
    matchers: tuple[tuple[str, str], ...] = ()  # (label, value): equality matchers

    def operator_spec(self, secret_name: str, secret_key: str) -> dict[str, Any]:
        """An AlertmanagerConfig's spec: the bearer credentials from a Secret."""
        route: dict[str, Any] = {
            "receiver": self.receiver,
            "groupBy": ["alertname"],
            "groupWait": self.group_wait,
            "groupInterval": self.group_interval,
            "repeatInterval": self.repeat_interval,
        }
        if self.matchers:
            route["matchers"] = [{"name": k, "value": v, "matchType": "="} for k, v in self.matchers]
        authorization = {"type": "Bearer", "credentials": {"name": secret_name, "key": secret_key}}
        webhook = {"url": self.url, "sendResolved": False, "httpConfig": {"authorization": authorization}}
        return {"route": route, "receivers": [{"name": self.receiver, "webhookConfigs": [webhook]}]}

    def alertmanager_yml(self, authorization: dict[str, Any], *, nested: bool = True) -> dict[str, Any]:
        """alertmanager.yml's `route` and `receivers`: nested, a sub-route to merge under an existing
        `route.routes` (it continues to the next route); else the top-level route."""
        route: dict[str, Any] = {
            "receiver": self.receiver,
            "group_by": ["alertname"],
            "group_wait": self.group_wait,
            "group_interval": self.group_interval,
            "repeat_interval": self.repeat_interval,
        }
        if self.matchers:
            route["matchers"] = [f'{k}="{v}"' for k, v in self.matchers]
        webhook = {"url": self.url, "send_resolved": False, "http_config": {"authorization": authorization}}
        receivers = [{"name": self.receiver, "webhook_configs": [webhook]}]
        if nested:
            return {"route": {"routes": [{**route, "continue": True}]}, "receivers": receivers}
        return {"route": route, "receivers": receivers}


def controller_route(t: Target) -> ControllerRoute:
    """The stack's rollback-labelled abort alerts, to its controller."""
    plan, stack, cfg = t.plan, t.stack, t.cfg
    c = cfg.controller
    return ControllerRoute(
        receiver=names(plan)["controller"],
        url=controller_url(plan, cfg),
        group_wait=c.groupWait,
        group_interval=c.groupWait,
        repeat_interval=c.repeatInterval,
        matchers=(("action", "rollback"), ("stack", stack)),
    )


def alertmanager_config(t: Target) -> dict[str, Any]:
    """The route of the rollback-labelled abort alerts to the controller, for an Alertmanager run by
    the prometheus-operator (labelled for the stack's kube-prometheus-stack release)."""
    plan, cfg = t.plan, t.cfg
    n = names(plan)
    meta = part_meta(n["controller"], t, "controller", release=cfg.release)
    spec = controller_route(t).operator_spec(n["webhook"], ADMIN_TOKEN_KEY)
    return {"apiVersion": ALERTMANAGER_CONFIG_API, "kind": "AlertmanagerConfig", "metadata": meta, "spec": spec}


def alertmanager_snippet(t: Target) -> dict[str, Any]:
    """The same route and receiver for an Alertmanager configured by hand (alertmanager.yml):
    merge `route.routes` and `receivers`; the credentials file holds the webhook secret."""
    credentials = {"credentials_file": "/etc/alertmanager/secrets/cutover-webhook"}
    return controller_route(t).alertmanager_yml(credentials)
