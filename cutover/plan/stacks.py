"""Stack configuration: the `memoryos-rollout:*` keys of `Pulumi.<stack>.yaml`.

`cutover render` reads them from the stack file; the Pulumi program reads the same keys through
`pulumi.Config`. Both build the one `StackConfig` model below, so they cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cutover.plan.errors import StackError
from cutover.plan.model import EffectivePhase, Plan, load_plan
from cutover.plan.yamlsrc import SourceFile

PROJECT = "memoryos-rollout"
# Pulumi secret config values: the gateway's admin token, the controller's webhook secret
SECRET_KEYS = ("adminToken", "webhookSecret")
LABEL_KEY = r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Part):
    requests: dict[str, str] = Field(default_factory=lambda: {"cpu": "250m", "memory": "256Mi"})
    limits: dict[str, str] = Field(default_factory=lambda: {"memory": "512Mi"})


class GatewayWorkload(_Part):
    """The memory gateway as a Deployment with a Service, a PodDisruptionBudget and a ServiceMonitor."""

    enabled: bool = False
    replicas: int = Field(default=2, ge=1, le=100)
    minAvailable: int = Field(
        default=1, ge=0, description="PodDisruptionBudget: pods kept during voluntary disruptions"
    )
    port: int = Field(default=8080, ge=1, le=65535)
    legacyUrl: str = Field(
        default="http://jido-memory:8080", pattern=r"^https?://", description="the legacy store service"
    )
    memoryosUrl: str = Field(default="http://memoryos:8080", pattern=r"^https?://", description="the MemoryOS service")
    flagdPort: int = Field(
        default=8013, ge=1, le=65535, description="port of the flagd sidecar the OpenFeature Operator injects"
    )
    scrapeInterval: str = Field(default="15s", pattern=r"^[0-9]+(ms|s|m)$")
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _budget(self) -> GatewayWorkload:
        if self.minAvailable >= self.replicas and self.replicas > 1:
            raise ValueError(
                f"minAvailable ({self.minAvailable}) must be below replicas ({self.replicas}), "
                "or no node could ever be drained"
            )
        return self


class LoadtestWorkload(_Part):
    """Distributed Locust: a master and N workers; results to a volume `cutover analyze` reads."""

    enabled: bool = False
    scenario: Literal["canary", "soak", "baseline"] = "canary"
    workers: int = Field(default=2, ge=1, le=200)
    users: int = Field(default=100, ge=1)
    spawnRate: float = Field(default=10, gt=0)
    runTime: str = Field(default="10m", pattern=r"^[0-9]+[smh]$", description="time limit of one headless run")
    runId: str = Field(
        default="1", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="change it to start a new run"
    )
    resultsSize: str = Field(default="2Gi", description="size of the results volume (ReadWriteMany)")
    storageClass: str | None = Field(default=None, description="storage class of the results volume")
    resources: Resources = Field(default_factory=Resources)


class NightlyWorkload(_Part):
    """A CronJob: the canary scenario headless against the stack's gateway, then `cutover analyze`."""

    enabled: bool = False
    schedule: str = Field(default="0 2 * * *", description="cron schedule (5 fields)")
    timeZone: str = "Etc/UTC"
    users: int = Field(default=50, ge=1)
    runTime: str = Field(default="15m", pattern=r"^[0-9]+[smh]$")
    processes: int = Field(default=2, ge=1, le=64)
    keepVerdicts: int = Field(
        default=14, ge=1, description="finished Jobs kept; every night's verdict stays on the volume"
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(requests={"cpu": "1", "memory": "512Mi"}, limits={"memory": "1Gi"})
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if not re.fullmatch(r"(@(yearly|annually|monthly|weekly|daily|midnight|hourly))|(\S+(\s+\S+){4})", v.strip()):
            raise ValueError(f"{v!r} is not a cron schedule: give 5 fields, e.g. '0 2 * * *'")
        return v


class MigrationWorkload(_Part):
    """Sharded migration as an Indexed Job (one namespace shard per pod), then a reconcile Job."""

    enabled: bool = False
    shards: int = Field(default=4, ge=1, le=1000)
    source: str = Field(
        default="jsonl:/data/export.jsonl", pattern=r"^(jsonl|sqlite):/", description="URI inside the pod"
    )
    target: str = Field(
        default="sqlite:/data/memoryos.db", pattern=r"^(jsonl|sqlite):/", description="URI inside the pod"
    )
    dataClaim: str = Field(
        default="memory-migration-data", description="existing PersistentVolumeClaim mounted at /data"
    )
    batch: int = Field(default=5000, ge=1)
    backoffLimit: int = Field(
        default=3, ge=0, description="retries per shard; a retried shard resumes at its checkpoint"
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(requests={"cpu": "1", "memory": "512Mi"}, limits={"memory": "1Gi"})
    )


class ControllerWorkload(_Part):
    """The rollback controller (`cutover controller`): a Deployment with a Service, a ServiceAccount
    that may patch only the stack's FeatureFlag, the webhook Secret, and an AlertmanagerConfig that
    routes the rollback-labelled abort alerts to it."""

    enabled: bool = False
    port: int = Field(default=9095, ge=1, le=65535)
    holdDown: str | None = Field(
        default=None, pattern=r"^[0-9]+[smhd]$", description="override of the plan's abort_triggers.hold_down"
    )
    groupWait: str = Field(default="10s", pattern=r"^[0-9]+[smh]$", description="Alertmanager route group_wait")
    repeatInterval: str = Field(
        default="5m", pattern=r"^[0-9]+[smh]$", description="Alertmanager route repeat_interval"
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(requests={"cpu": "50m", "memory": "128Mi"}, limits={"memory": "256Mi"})
    )


class StackConfig(BaseModel):
    """Per-stack settings. Field names are the Pulumi config keys (without the project prefix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: str = Field(description="the rollout phase this stack is in")
    namespace: str = Field(
        default="memory", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Kubernetes namespace of the objects"
    )
    planPath: str = Field(default="rollout.yaml", description="the plan file, relative to the project directory")
    evidencePath: str | None = Field(
        default=None,
        description="where gate evidence is read: a file or directory (JSON) relative to the project directory, "
        "or configmap:NAMESPACE (one ConfigMap per item, as the nightly CronJob writes them)",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="labels added to every object")
    killSwitch: bool = Field(default=False, description="force legacy for everyone (emergency)")
    acknowledgeRollback: str | None = Field(
        default=None,
        description="the changedAt of a rollback in the live flags that this pulumi up may overwrite "
        "(pulumi up refuses to undo a rollback it did not make, and prints the value to set)",
    )
    skipAwait: bool = Field(
        default=False,
        description="pulumi up does not wait for objects to become ready (annotation pulumi.com/skipAwait): "
        "for an API server without nodes, as in cutover's own end-to-end test",
    )
    release: str = Field(
        default="kube-prometheus-stack",
        description="kube-prometheus-stack release: the PrometheusRule's `release` label",
    )
    runbookBaseUrl: str = Field(
        default="http://127.0.0.1:8000", pattern=r"^https?://", description="base URL of the published docs site"
    )
    grafanaFolder: str = Field(default="MemoryOS rollout", description="Grafana folder of the dashboards")
    image: str = Field(default="ghcr.io/example/cutover:0.1.0", description="container image built from the Dockerfile")
    gateway: GatewayWorkload = Field(default_factory=GatewayWorkload, description="the gateway on Kubernetes")
    loadtest: LoadtestWorkload = Field(default_factory=LoadtestWorkload, description="distributed Locust")
    nightly: NightlyWorkload = Field(default_factory=NightlyWorkload, description="nightly canary comparison")
    migration: MigrationWorkload = Field(default_factory=MigrationWorkload, description="sharded migration")
    controller: ControllerWorkload = Field(default_factory=ControllerWorkload, description="the rollback controller")

    def project_path(self, root: Path, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else root / p


def stack_file(root: Path, stack: str) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def available_stacks(root: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def load_stack(root: Path, stack: str) -> StackConfig:
    path = stack_file(root, stack)
    if not path.is_file():
        known = ", ".join(available_stacks(root)) or "none"
        raise StackError(
            f"unknown stack {stack!r}",
            file=str(path),
            fix=f"use one of the stacks in {root} ({known}), or create Pulumi.{stack}.yaml",
        )
    src = SourceFile(path, StackError)
    config = (src.data or {}).get("config") if isinstance(src.data, dict) else None
    if not isinstance(config, dict):
        raise src.error("no `config:` mapping", fix=f"add config keys such as {PROJECT}:phase")
    # secret values (`pulumi config set --secret`) are the Pulumi program's alone: never read here
    ours = {
        k.split(":", 1)[1]: v
        for k, v in config.items()
        if k.startswith(PROJECT + ":") and k.split(":", 1)[1] not in SECRET_KEYS
    }
    keyed = {("config", f"{PROJECT}:{k}"): k for k in ours}
    try:
        return StackConfig.model_validate(ours)
    except ValidationError as exc:  # map the field back to the stack file's key and line
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        loc = next((lk for lk, k in keyed.items() if k == key), ("config",)) + tuple(err["loc"][1:])
        fix = f"set it with: pulumi config set {PROJECT}:{key} VALUE --stack {stack}"
        if err["type"] == "extra_forbidden":
            fix = f"remove {PROJECT}:{key}; known keys: {', '.join(StackConfig.model_fields)}"
        raise src.error(err["msg"], loc, fix=fix) from None


def load_project(root: Path, stack: str) -> tuple[Plan, StackConfig]:
    """The stack's config and its plan; a phase the plan lacks is reported against the stack file."""
    cfg = load_stack(root, stack)
    plan = load_plan(cfg.project_path(root, cfg.planPath))
    if cfg.phase not in plan.phase_names:
        raise StackError(
            f"unknown phase {cfg.phase!r}",
            file=str(stack_file(root, stack)),
            field=f"{PROJECT}:phase",
            fix=f"use one of: {', '.join(plan.phase_names)}",
        )
    return plan, cfg


@dataclass(frozen=True)
class Target:
    """What every renderer renders for: the plan, the stack (name and settings) and the phase, with
    the phase's effective settings (the plan's overrides merged in)."""

    plan: Plan
    stack: str
    cfg: StackConfig
    phase: str

    @cached_property
    def eff(self) -> EffectivePhase:
        return self.plan.effective(self.phase)
