"""Run the Pulumi program (infra/__main__.py) under Pulumi's own mocks and collect what it declares."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi

from cutover.infra.program import BODY
from cutover.plan.stacks import PROJECT

from .conftest import ROOT

STACK_REF = "pulumi:pulumi:StackReference"


@dataclass
class Recorder(pulumi.runtime.Mocks):
    deployed_phase: str | None = None  # the stack's previous `phase` output
    resources: list = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.typ == STACK_REF:
            outputs = {"phase": self.deployed_phase} if self.deployed_phase else {}
            return args.name, {"name": args.name, "outputs": outputs, "secretOutputNames": []}
        self.resources.append(args)
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def run_program(
    stack: str,
    config: dict,
    deployed_phase: str | None,
    secrets: dict | None = None,
    live_flags: dict | None = None,
) -> list[dict]:
    """Declared Kubernetes objects as manifests: apiVersion, kind, metadata and spec/data/stringData.
    `secrets` are secret config values (`pulumi config set --secret`). `live_flags`: the flag set the
    cluster's FeatureFlag holds (a mock: no cluster runs under Pulumi's mocks; tests/e2e reads a real one)."""
    mocks = Recorder(deployed_phase)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(
        {
            f"{PROJECT}:{k}": json.dumps(v) if isinstance(v, (dict, list, bool)) else str(v)
            for k, v in {**config, **(secrets or {})}.items()
        },
        [f"{PROJECT}:{k}" for k in (secrets or {})],
    )

    @pulumi.runtime.test
    def program():
        from cutover.infra.program import program as body

        body(ROOT, read_live=lambda namespace, name: live_flags)
        return pulumi.Output.from_input(True)

    program()
    objects = []
    for r in mocks.resources:
        inputs = dict(r.inputs)
        assert r.typ.startswith("kubernetes:"), r.typ
        obj = {k: inputs[k] for k in ("apiVersion", "kind", "metadata", *BODY) if k in inputs}
        if r.typ.startswith("kubernetes:core/v1:Secret"):
            obj.setdefault("apiVersion", "v1")
            obj.setdefault("kind", "Secret")
        objects.append(obj)
    return objects
