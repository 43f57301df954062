"""What every command group shares: the consoles, the project and plan options, phase summaries."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from cutover.plan.model import Plan, load_plan
from cutover.plan.project import find_project, plan_file
from cutover.plan.stacks import StackConfig, load_project

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; give them room instead.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

ProjectDir = typer.Option(
    None,
    "--project-dir",
    "-C",
    envvar="CUTOVER_PROJECT_DIR",
    help="directory holding Pulumi.yaml and the stack files (default: the working directory or the nearest parent "
    "holding Pulumi.yaml)",
)
PlanFile = typer.Option(
    None,
    "--file",
    "-f",
    help="plan file (default: the project's rollout.yaml, or the plan shipped with cutover outside a project)",
)


def project(project_dir: Path | None, stack: str) -> tuple[Plan, StackConfig]:
    """The plan and the stack config of the project (found by walking up when not given)."""
    return load_project(find_project(project_dir), stack)


def plan(file: Path | None) -> Plan:
    return load_plan(plan_file(file))


def flags_row(plan: Plan, phase: str) -> tuple[str, str, str]:
    f = plan.phase(phase).flags
    return f.read_path, f.write_mode, f.treatment.short()


def changes(plan: Plan, i: int) -> str:
    """What entering phase i changes, in flag terms."""
    if i == 0:
        return "starting state"
    before, now = flags_row(plan, plan.phases[i - 1].name), flags_row(plan, plan.phases[i].name)
    diffs = [f"{n} {a}->{b}" for n, a, b in zip(("reads", "writes", "cohort"), before, now) if a != b]
    return ", ".join(diffs) or "no flag change"
