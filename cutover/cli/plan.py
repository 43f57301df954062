"""`cutover plan`: validate, show and check transitions of the rollout plan."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cutover.cli import common
from cutover.cli.common import PlanFile, changes, flags_row, out
from cutover.judge.evidence import check_transition
from cutover.ops.evidencestore import load_store
from cutover.plan.durations import format_duration

commands = typer.Typer(help="Validate and show the rollout plan.", no_args_is_help=True)


@commands.command("validate")
def plan_validate(
    file: Path | None = typer.Argument(
        None, help="plan file (default: the project's rollout.yaml, or the plan shipped with cutover)"
    ),
) -> None:
    """Check a plan file; exit 0 when valid, 2 with the file, line, field and fix when not."""
    plan = common.plan(file)
    out.print(
        f"{file}: valid plan {plan.name!r}, {len(plan.phases)} phases ({' -> '.join(plan.phase_names)}), "
        f"digest {plan.digest()}"
    )


@commands.command("show")
def plan_show(
    phase: str | None = typer.Option(None, "--phase", "-p", help="show one phase with its effective settings"),
    file: Path | None = PlanFile,
    as_json: bool = typer.Option(False, "--json", help="print the effective settings as JSON"),
) -> None:
    """Print the phases, or one phase with every effective threshold, criterion and trigger."""
    plan = common.plan(file)
    names = [phase] if phase else plan.phase_names
    effs = [plan.effective(n) for n in names]
    if as_json:
        out.print_json(json.dumps([e.model_dump(mode="json", by_alias=True) for e in effs]))
        return
    if not phase:
        table = Table(title=f"plan {plan.name} ({plan.digest()})")
        for col in ("#", "phase", "min", "reads", "writes", "cohort", "exit evidence"):
            table.add_column(col)
        for e in effs:
            table.add_row(
                str(e.index),
                e.name,
                format_duration(e.phase.min_duration),
                *flags_row(plan, e.name),
                ", ".join(e.phase.exit_evidence) or "-",
            )
        out.print(table)
        return
    e = effs[0]
    out.print(f"[bold]{e.phase.title or e.name}[/bold]  (phase {e.index} of {len(plan.phases) - 1})")
    if e.phase.description:
        out.print(e.phase.description)
    f = e.phase.flags
    out.print(
        f"flags: treatment reads {f.read_path}; writes {f.write_mode}; treatment cohort: {f.treatment.describe()}"
    )
    out.print(f"changes: {changes(plan, e.index)}")
    for title, model in (
        ("monitoring targets", e.monitoring),
        ("abort triggers", e.abort_triggers),
        ("analysis", e.analysis),
    ):
        t = Table(title=title, show_header=True)
        t.add_column("setting")
        t.add_column("value")
        t.add_column("meaning")
        for key, value in model.model_dump(mode="json", by_alias=True).items():
            fld = type(model).model_fields.get(key) or type(model).model_fields.get(key + "_")
            t.add_row(key, str(value), (fld.description if fld else "") or "")
        out.print(t)
    out.print("[bold]success criteria[/bold]")
    for c in e.success_criteria():
        out.print(f"  - {c}")
    out.print("[bold]abort triggers[/bold]")
    for c in e.abort_conditions():
        out.print(f"  - {c}")


@commands.command("transition")
def plan_transition(
    to: str = typer.Option(..., "--to", help="phase to enter"),
    from_: str | None = typer.Option(None, "--from", help="phase the stack is in now (omit: nothing deployed yet)"),
    evidence: list[Path] = typer.Option([], "--evidence", "-e", help="evidence file or directory (repeatable)"),
    stack: str | None = typer.Option(None, "--stack", "-s", help="only count evidence for this stack"),
    file: Path | None = PlanFile,
) -> None:
    """Check a phase change the way the Pulumi program does: one phase forward through its gate, or back."""
    plan = common.plan(file)
    found = load_store(evidence)
    direction, gate = check_transition(plan, from_, to, found, stack)
    out.print(f"{from_ or '(nothing deployed)'} -> {to}: allowed ({direction})")
    for reason in gate.reasons if gate else []:
        out.print(f"  - {reason}")
