"""Scale-out on Kubernetes: the gateway, distributed Locust, the nightly comparison and the sharded
migration, as plain manifests built from the plan and the stack config.

Each part is switched on per stack (`memoryos-rollout:gateway`, `:loadtest`, `:nightly`,
`:migration`, each with `enabled: true`). `render()` adds these objects to the same manifest list as
the flags, rules and dashboards, so `cutover render` and the Pulumi program declare the same things.

The one exception is the gateway's admin token: it is a Pulumi *secret* config value
(`pulumi config set --secret memoryos-rollout:adminToken ...`), so the Secret that carries it is
built here without data (`admin_secret`) and only the Pulumi program fills it in; rendered files
never hold the token.

One module a part: common (names, labels, containers), gateway, locust, nightly, migration,
controller; `build` and `secrets` here put them together."""

from __future__ import annotations

from typing import Any

from cutover.plan.stacks import Target
from cutover.render.workloads.common import (
    ADMIN_TOKEN_KEY,
    PLAN_DIR,
    SECRET_CONFIG_ANNOTATION,
    WEBHOOK_CONFIG_KEY,
    gateway_url,
    names,
    plan_config_map,
    pod_spec,
    secret_without_data,
)
from cutover.render.workloads.controller import alertmanager_snippet, controller_objects
from cutover.render.workloads.gateway import (
    admin_secret,
    feature_flag_source,
    gateway_deployment,
    gateway_pdb,
    gateway_service,
    gateway_service_monitor,
)
from cutover.render.workloads.locust import locust_master, locust_workers, locustfiles_config_map, results_claim
from cutover.render.workloads.migration import migration_job, reconcile_job
from cutover.render.workloads.nightly import nightly_cron_job, nightly_rbac

__all__ = [
    "ADMIN_TOKEN_KEY",
    "PLAN_DIR",
    "SECRET_CONFIG_ANNOTATION",
    "alertmanager_snippet",
    "build",
    "gateway_url",
    "names",
    "pod_spec",
    "secrets",
]


def build(t: Target) -> list[dict[str, Any]]:
    """Every scale-out object this stack enables (none when all parts are off)."""
    cfg = t.cfg
    objs: list[dict[str, Any]] = []
    if cfg.gateway.enabled or cfg.loadtest.enabled or cfg.nightly.enabled or cfg.controller.enabled:
        objs.append(plan_config_map(t))
    if cfg.gateway.enabled:
        objs += [
            feature_flag_source(t),
            gateway_deployment(t),
            gateway_service(t),
            gateway_pdb(t),
            gateway_service_monitor(t),
        ]
    if cfg.loadtest.enabled or cfg.nightly.enabled:
        objs += [locustfiles_config_map(t), results_claim(t)]
    if cfg.loadtest.enabled:
        objs += [*locust_master(t), locust_workers(t)]
    if cfg.nightly.enabled:
        objs += [*nightly_rbac(t), nightly_cron_job(t)]
    if cfg.migration.enabled:
        objs += [migration_job(t), reconcile_job(t)]
    if cfg.controller.enabled:
        objs += controller_objects(t)
    for obj in objs:
        pod = pod_spec(obj)
        if pod is not None:  # volumes written by uid 10001: the results and data volumes, the outbox
            pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}
    return objs


def secrets(t: Target) -> list[dict[str, Any]]:
    """Secrets whose values only Pulumi holds (filled by the program from the secret config value
    their annotation names, never rendered); each holds its value under the key `token`."""
    plan, cfg = t.plan, t.cfg
    out = [admin_secret(t)] if cfg.gateway.enabled else []
    if cfg.controller.enabled:
        out.append(secret_without_data(names(plan)["webhook"], WEBHOOK_CONFIG_KEY, t, "controller"))
    return out
