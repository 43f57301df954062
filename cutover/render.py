"""Render one stack at one phase: the flag set, the raw files and the Kubernetes objects.

Pure: `render()` takes a plan and a stack config and returns a `Rendering`; `write_rendering()` is
the only function here that touches the disk. `cutover render` and the Pulumi program both call
`render()`, so they produce the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from . import alerts, dashboards, flags, manifests, ruletests, workloads
from .plan import Plan, load_plan
from .errors import StackError
from .stacks import PROJECT, StackConfig, load_stack, stack_file


@dataclass(frozen=True)
class Rendering:
    stack: str
    phase: str
    kill_switch: bool
    flags: dict
    rules: dict
    rule_tests: dict
    dashboards: dict[str, dict]
    manifests: list[dict]
    secrets: list[dict]  # Secrets without data: only the Pulumi program fills them (from secret config)

    def files(self) -> dict[str, str]:
        """Relative path -> file text, as `cutover render --out DIR` writes them."""
        out = {
            "flags.json": flags.dumps(self.flags),
            "rules.yml": yaml.safe_dump(self.rules, sort_keys=False),
            "rules.test.yml": yaml.safe_dump(self.rule_tests, sort_keys=False),
        }
        for slug, board in self.dashboards.items():
            out[f"dashboards/{slug}.json"] = dashboards.dumps(board)
        for obj in self.manifests:
            out[f"manifests/{manifests.file_name(obj)}"] = yaml.safe_dump(obj, sort_keys=False)
        return out


def render(plan: Plan, stack: str, cfg: StackConfig, phase: str | None = None, kill_switch: bool | None = None) -> Rendering:
    phase = phase or cfg.phase
    plan.index(phase)  # unknown phase -> PlanError naming the known ones
    kill = cfg.killSwitch if kill_switch is None else kill_switch
    flag_doc = flags.render_flags(plan, phase, stack, kill_switch=kill)
    rules = alerts.render_rules(plan, phase, stack, cfg.runbookBaseUrl)
    boards = dashboards.build(plan)
    objects = [
        manifests.feature_flag(plan, stack, cfg, phase, flag_doc),
        manifests.prometheus_rule(plan, stack, cfg, phase, rules),
        *(manifests.dashboard_config_map(plan, stack, cfg, phase, slug, dashboards.dumps(b)) for slug, b in boards.items()),
        *workloads.build(plan, stack, cfg, phase),
    ]
    return Rendering(
        stack=stack, phase=phase, kill_switch=kill, flags=flag_doc, rules=rules,
        rule_tests=ruletests.build_rule_tests(plan, phase, rules), dashboards=boards, manifests=objects,
        secrets=workloads.secrets(plan, stack, cfg, phase),
    )


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
    """Write every file; files of a previous render that are no longer produced are removed."""
    files = rendering.files()
    for sub, pattern in (("manifests", "*.yaml"), ("dashboards", "*.json")):
        if (out / sub).is_dir():
            for old in (out / sub).glob(pattern):
                if f"{sub}/{old.name}" not in files:
                    old.unlink()
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
