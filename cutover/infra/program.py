"""The body of the Pulumi program (infra/__main__.py): stack config in, Kubernetes resources out."""

from __future__ import annotations

import time
import typing as t
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pydantic import BaseModel

from cutover.infra.liveflags import LiveFlags, LiveReader, read_featureflag
from cutover.judge.evidence import check_transition
from cutover.ops.evidencestore import load_store, namespace_of
from cutover.plan.campaign import PhaseClock
from cutover.plan.errors import CutoverError
from cutover.plan.model import load_plan
from cutover.plan.stacks import PROJECT, StackConfig
from cutover.render import workloads
from cutover.render.rendering import Rendering, render


def stack_config() -> StackConfig:
    """Read every StackConfig field from `pulumi.Config`; objects come as structured config."""
    cfg = pulumi.Config(PROJECT)
    values: dict[str, t.Any] = {}
    for name, field in StackConfig.model_fields.items():
        ann = field.annotation
        structured = t.get_origin(ann) is dict or (isinstance(ann, type) and issubclass(ann, BaseModel))
        value = cfg.get_object(name) if structured else cfg.get(name)
        if value is not None:
            values[name] = value
    for flag in ("killSwitch", "skipAwait"):
        if flag in values:
            values[flag] = str(values[flag]).lower() == "true"
    return StackConfig.model_validate(values)


# Core kinds as pulumi-kubernetes' typed resources; everything else (the CRDs) as CustomResource.
TYPED = {
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("batch/v1", "CronJob"): k8s.batch.v1.CronJob,
}
# the top-level fields a manifest may carry besides metadata, and their names as typed-resource arguments
BODY = ("spec", "data", "stringData", "type", "rules", "roleRef", "subjects")
ARG = {"stringData": "string_data", "roleRef": "role_ref"}


# pulumi-kubernetes' documented annotation: create or update the object without waiting for it to
# become ready (a Deployment's pods, a Job's completion, a Service's endpoints)
SKIP_AWAIT = "pulumi.com/skipAwait"
# pulumi-kubernetes' documented annotation: server-side apply takes over fields another manager set
PATCH_FORCE = "pulumi.com/patchForce"


def declare(
    obj: dict[str, Any],
    gate: pulumi.Output[str],
    opts: pulumi.ResourceOptions | None = None,
    skip_await: bool = False,
    **inputs: t.Any,
) -> pulumi.CustomResource:
    """One Pulumi resource per manifest. Inputs wait on `gate`, so a refused transition registers nothing."""
    meta = obj["metadata"]
    if skip_await:
        meta = {**meta, "annotations": {**meta.get("annotations", {}), SKIP_AWAIT: "true"}}
    if obj["kind"] == "FeatureFlag":
        # `cutover flags` and the controller patch it too; the program has read those changes and
        # refused to undo a rollback among them (liveflags), so its apply takes the fields back
        meta = {**meta, "annotations": {**meta.get("annotations", {}), PATCH_FORCE: "true"}}
    metadata = gate.apply(lambda _: meta)
    name = f"{obj['kind'].lower()}-{obj['metadata']['name']}"
    body = {k: obj[k] for k in BODY if k in obj}
    body.update(inputs)
    typed = TYPED.get((obj["apiVersion"], obj["kind"]))
    if typed is not None:
        body = {ARG.get(k, k): v for k, v in body.items()}
        resource: pulumi.CustomResource = typed(name, metadata=metadata, opts=opts, **body)
        return resource
    return k8s.apiextensions.CustomResource(
        name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=metadata, opts=opts, **body
    )


def program(root: Path, read_live: LiveReader = read_featureflag) -> Rendering:
    """`read_live`: how the live flags are read (the Kubernetes API; tests under Pulumi's mocks, where
    no cluster runs, hand in the flag set a cluster would hold)."""
    stack = pulumi.get_stack()
    try:
        cfg = stack_config()
        plan = load_plan(cfg.project_path(root, cfg.planPath))
        rendering = render(plan, stack, cfg)
        # The live flags first: a rollback there is never silently undone, and the phase's start
        # recorded there is what its minimum duration runs from (the program records it in turn).
        flag_object = next(o for o in rendering.manifests if o["kind"] == "FeatureFlag")
        live = LiveFlags(read_live(flag_object["metadata"]["namespace"], flag_object["metadata"]["name"]))
        flag_set = flag_object["spec"]["flagSpec"]
        live.guard(flag_set, cfg.acknowledgeRollback)
        flag_set["metadata"] = {
            **flag_set["metadata"],
            "phaseSince": round(live.since_for(cfg.phase, time.time()), 3),
            # the stack's own state from here on: a rollback it replaces (acknowledged, or kept as the
            # stack's phase) is no longer an active one
            "changedBy": "pulumi",
            "rollbackLevel": "",
        }
        store: str | Path | None = cfg.evidencePath
        if cfg.evidencePath is not None and namespace_of(cfg.evidencePath) is None:  # a file or directory
            path = cfg.project_path(root, cfg.evidencePath)
            store = path
            if not path.exists():
                # A campaign starts with no evidence: gates stay closed (they fail closed), rollbacks still work.
                pulumi.log.warn(f"evidence path {path} does not exist yet: every forward gate is closed")
                store = None
        evidence = load_store(store)
    except CutoverError as exc:
        raise pulumi.RunError(str(exc)) from None

    # The phase this stack deployed last is its own `phase` output (none on the first `pulumi up`).
    me = pulumi.StackReference(f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}")

    def allowed(deployed: t.Any) -> str:
        current = live.phase or deployed or None  # the live flags' phase (a rollback moves it), else the last up's
        try:
            clock = PhaseClock(since=live.phase_since)
            direction, _ = check_transition(plan, current, cfg.phase, evidence, stack, clock)
        except CutoverError as exc:
            raise pulumi.RunError(f"refusing phase {cfg.phase!r} for stack {stack!r}: {exc}") from None
        pulumi.log.info(f"phase {current or '(none)'} -> {cfg.phase}: {direction}")
        return direction

    gate = me.get_output("phase").apply(allowed)
    declared: dict[tuple[str, str], pulumi.CustomResource] = {}
    for obj in rendering.manifests:
        opts = None
        if obj["kind"] == "Job" and obj["metadata"]["name"] == workloads.names(plan)["reconcile"]:
            # reconcile after every shard: pulumi-kubernetes waits for the migration Job to complete
            opts = pulumi.ResourceOptions(depends_on=[declared[("Job", workloads.names(plan)["migrate"])]])
        declared[(obj["kind"], obj["metadata"]["name"])] = declare(obj, gate, opts, cfg.skipAwait)
    for obj in rendering.secrets:  # each filled from the secret config value its annotation names
        key = obj["metadata"]["annotations"][workloads.SECRET_CONFIG_ANNOTATION]
        token = pulumi.Config(PROJECT).get_secret(key)
        if token is None:
            raise pulumi.RunError(
                f"{obj['metadata']['name']} needs {PROJECT}:{key}, which is not set; set it with: "
                f'pulumi config set --secret {PROJECT}:{key} "$(openssl rand -hex 24)"'
            )
        secret_token: pulumi.Output[str] = pulumi.Output.secret(token)
        declare(obj, gate, None, cfg.skipAwait, stringData=secret_token.apply(lambda v: {workloads.ADMIN_TOKEN_KEY: v}))
    pulumi.export("phase", cfg.phase)
    pulumi.export("transition", gate)
    pulumi.export("planDigest", plan.digest())
    pulumi.export("killSwitch", rendering.kill_switch)
    return rendering
