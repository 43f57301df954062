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

from cutover.plan.model import Plan
from cutover.plan.stacks import StackConfig
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
from cutover.render.workloads.nightly import nightly_cron_job

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


def secrets(plan: Plan, stack: str, cfg: StackConfig) -> list[dict]:
    """Secrets whose values only Pulumi holds (filled by the program from the secret config value
    their annotation names, never rendered); each holds its value under the key `token`."""
    out = [admin_secret(plan, stack, cfg)] if cfg.gateway.enabled else []
    if cfg.controller.enabled:
        out.append(secret_without_data(names(plan)["webhook"], WEBHOOK_CONFIG_KEY, plan, stack, cfg, "controller"))
    return out
