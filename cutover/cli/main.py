"""The `cutover` command line: a thin shell over the plan, the renderers, the judge and the gate.

One module per command group; this one assembles them and turns user errors into exit code 2.
"""

from __future__ import annotations

import sys

import typer

from cutover.cli import drill, evidence, judge, migration, ops, plan, render, serve
from cutover.cli.common import err
from cutover.plan.errors import CutoverError

app = typer.Typer(
    help="Roll an agent memory service from jido_memory to MemoryOS, phase by phase.\n\n"
    "Commands read the rollout plan (rollout.yaml) and the stack files (Pulumi.<stack>.yaml) of the project "
    "directory: --project-dir, or the working directory or its nearest parent holding Pulumi.yaml.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(plan.commands, name="plan")
app.add_typer(render.dashboards_group, name="dashboards")
app.add_typer(render.metrics_group, name="metrics")
app.add_typer(evidence.commands, name="evidence")
for group in (render, serve, migration, judge, ops, drill):
    app.add_typer(group.commands)


def main() -> None:
    try:
        app()
    except CutoverError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
