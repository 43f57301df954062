"""Stack configuration: the `memoryos-rollout:*` keys of `Pulumi.<stack>.yaml`.

`cutover render` reads them from the stack file; the Pulumi program reads the same keys through
`pulumi.Config`. Both build the one `StackConfig` model below, so they cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import StackError
from .yamlsrc import SourceFile

PROJECT = "memoryos-rollout"
LABEL_KEY = r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$"


class StackConfig(BaseModel):
    """Per-stack settings. Field names are the Pulumi config keys (without the project prefix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: str = Field(description="the rollout phase this stack is in")
    namespace: str = Field(
        "memory", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Kubernetes namespace of the objects"
    )
    planPath: str = Field("rollout.yaml", description="the plan file, relative to the project directory")
    evidencePath: str | None = Field(
        None, description="file or directory of gate evidence (JSON), relative to the project directory"
    )
    labels: dict[str, str] = Field(default_factory=dict, description="labels added to every object")
    killSwitch: bool = Field(False, description="force legacy for everyone (emergency)")
    release: str = Field(
        "kube-prometheus-stack", description="kube-prometheus-stack release: the PrometheusRule's `release` label"
    )
    runbookBaseUrl: str = Field(
        "http://127.0.0.1:8000", pattern=r"^https?://", description="base URL of the published docs site"
    )
    grafanaFolder: str = Field("MemoryOS rollout", description="Grafana folder of the dashboards")

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
    ours = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(PROJECT + ":")}
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
