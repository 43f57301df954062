"""Pulumi program: the flags (and, as the kit grows, rules and dashboards) of one stack at one phase.

A phase change is a config change:

    pulumi config set memoryos-rollout:phase canary && pulumi up

The program holds no logic of its own: it reads the stack config into cutover's StackConfig,
renders with the same `cutover.render.rendering.render()` that `cutover render` uses, checks the transition
from the phase this stack last deployed (its own `phase` output) with `cutover.judge.evidence`, and
declares one Kubernetes object per rendered manifest. A jump of more than one phase forward, or a
forward step whose gate has no passing evidence, fails before any object is registered.
"""

from __future__ import annotations

from pathlib import Path

from cutover.infra.program import program

program(Path(__file__).resolve().parent.parent)  # the directory holding Pulumi.yaml
