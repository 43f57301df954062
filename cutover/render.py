"""Render one stack at one phase: the flag set, the raw files and the Kubernetes objects.

Pure: `render()` takes a plan and a stack config and returns a `Rendering`; `write_rendering()` is
the only function here that touches the disk. `cutover render` and the Pulumi program both call
`render()`, so they produce the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from . import flags, manifests
from .plan import Plan, load_plan
from .errors import StackError
from .stacks import PROJECT, StackConfig, load_stack, stack_file


@dataclass(frozen=True)
class Rendering:
    stack: str
    phase: str
    kill_switch: bool
    flags: dict
    manifests: list[dict]

    def files(self) -> dict[str, str]:
        """Relative path -> file text, as `cutover render --out DIR` writes them."""
        out = {"flags.json": flags.dumps(self.flags)}
        for obj in self.manifests:
            out[f"manifests/{manifests.file_name(obj)}"] = yaml.safe_dump(obj, sort_keys=False)
        return out


def render(plan: Plan, stack: str, cfg: StackConfig, phase: str | None = None, kill_switch: bool | None = None) -> Rendering:
    phase = phase or cfg.phase
    plan.index(phase)  # unknown phase -> PlanError naming the known ones
    kill = cfg.killSwitch if kill_switch is None else kill_switch
    flag_doc = flags.render_flags(plan, phase, stack, kill_switch=kill)
    objects = [manifests.feature_flag(plan, stack, cfg, phase, flag_doc)]
    return Rendering(stack=stack, phase=phase, kill_switch=kill, flags=flag_doc, manifests=objects)


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


def write_rendering(rendering: Rendering, out: Path) -> list[Path]:
    """Write every file; manifests of a previous render that are no longer produced are removed."""
    files = rendering.files()
    mdir = out / "manifests"
    if mdir.is_dir():
        for old in mdir.glob("*.yaml"):
            if f"manifests/{old.name}" not in files:
                old.unlink()
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
