"""The body of the Pulumi program (infra/__main__.py): stack config in, Kubernetes resources out."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from .errors import CutoverError
from .evidence import check_transition, load_evidence
from .plan import load_plan
from .render import Rendering, render
from .stacks import PROJECT, StackConfig


def stack_config() -> StackConfig:
    """Read every StackConfig field from `pulumi.Config`; objects come as structured config."""
    cfg = pulumi.Config(PROJECT)
    values: dict[str, t.Any] = {}
    for name, field in StackConfig.model_fields.items():
        structured = t.get_origin(field.annotation) is dict
        value = cfg.get_object(name) if structured else cfg.get(name)
        if value is not None:
            values[name] = value
    if "killSwitch" in values:
        values["killSwitch"] = str(values["killSwitch"]).lower() == "true"
    return StackConfig.model_validate(values)


def declare(obj: dict, gate: pulumi.Output, opts: pulumi.ResourceOptions | None = None) -> pulumi.CustomResource:
    """One Pulumi resource per manifest. Inputs wait on `gate`, so a refused transition registers nothing."""
    metadata = gate.apply(lambda _: obj["metadata"])
    name = f"{obj['kind'].lower()}-{obj['metadata']['name']}"
    if obj["kind"] == "ConfigMap":
        return k8s.core.v1.ConfigMap(name, metadata=metadata, data=obj["data"], opts=opts)
    return k8s.apiextensions.CustomResource(
        name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=metadata, spec=obj["spec"], opts=opts
    )


def program(root: Path) -> Rendering:
    stack = pulumi.get_stack()
    try:
        cfg = stack_config()
        plan = load_plan(cfg.project_path(root, cfg.planPath))
        rendering = render(plan, stack, cfg)
        evidence_path = cfg.project_path(root, cfg.evidencePath) if cfg.evidencePath else None
        if evidence_path is not None and not evidence_path.exists():
            # A campaign starts with no evidence: gates stay closed (they fail closed), rollbacks still work.
            pulumi.log.warn(f"evidence path {evidence_path} does not exist yet: every forward gate is closed")
            evidence_path = None
        evidence = load_evidence(evidence_path)
    except CutoverError as exc:
        raise pulumi.RunError(str(exc)) from None

    # The phase this stack deployed last is its own `phase` output (none on the first `pulumi up`).
    me = pulumi.StackReference(f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}")

    def allowed(current: t.Any) -> str:
        try:
            direction, gate = check_transition(plan, current or None, cfg.phase, evidence, stack)
        except CutoverError as exc:
            raise pulumi.RunError(f"refusing phase {cfg.phase!r} for stack {stack!r}: {exc}") from None
        pulumi.log.info(f"phase {current or '(none)'} -> {cfg.phase}: {direction}")
        return direction

    gate = me.get_output("phase").apply(allowed)
    for obj in rendering.manifests:
        declare(obj, gate)
    pulumi.export("phase", cfg.phase)
    pulumi.export("transition", gate)
    pulumi.export("planDigest", plan.digest())
    pulumi.export("killSwitch", rendering.kill_switch)
    return rendering
