"""`cutover drill`: the chaos drill against a running stack, written as drill evidence."""

from __future__ import annotations

from pathlib import Path

import typer

from cutover.cli import common
from cutover.cli.common import PlanFile, ProjectDir, err, out
from cutover.cli.evidence import DEFAULT_ADMIN, admin_token, evidence_dir, write_new

commands = typer.Typer()


@commands.command("drill")
def drill_cmd(
    gateway: str = typer.Option("http://127.0.0.1:8080", "--gateway", help="the gateway's public API (the traffic)"),
    admin: str = typer.Option(DEFAULT_ADMIN, "--admin", help="the gateway's admin API (fault injection, status)"),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="file holding the admin token (default: $CUTOVER_ADMIN_TOKEN)"
    ),
    prometheus: str = typer.Option(..., "--prometheus", help="the Prometheus evaluating the phase's abort alerts"),
    controller: str = typer.Option(..., "--controller", help="the rollback controller (its GET /status)"),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        help="latency[=MS] (default 800) or errors[=RATE] (default 1.0), injected into MemoryOS; repeat to inject "
        "both at once (default: errors)",
    ),
    legacy: str = typer.Option(..., "--legacy", help="the legacy store (sqlite:PATH): the reconciliation's source"),
    memoryos: str = typer.Option(..., "--memoryos", help="the MemoryOS store (sqlite:PATH): its target"),
    rollback_log: Path = typer.Option(
        ..., "--rollback-log", help="the controller's rollback log (cutover controller --log)"
    ),
    phase: str | None = typer.Option(None, "--phase", "-p", help="phase drilled (default: the gateway's phase)"),
    stack: str = typer.Option("staging", "--stack", "-s", help="stack the evidence applies to (and its plan)"),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="evidence directory (default: the stack's evidencePath); writes OUT/<phase>/"
    ),
    timeout: float = typer.Option(
        900, "--timeout", min=1, help="seconds to wait for the alert, the rollback and the recovery"
    ),
    clients: int = typer.Option(3, "--clients", min=1, max=32, help="concurrent clients of the drill's traffic"),
    rate: float = typer.Option(60, "--rate", min=1, max=2000, help="requests a second, all clients together"),
    namespace: str = typer.Option("cutover-drill", "--namespace", help="the namespace the drill's traffic uses"),
    file: Path | None = PlanFile,
    project_dir: Path | None = ProjectDir,
) -> None:
    """Run the chaos drill against a running stack and write it as evidence: OUT/<phase>/drill-<UTC>.json.

    Injects the fault into MemoryOS through the admin API while clients send bounded traffic to
    --gateway; waits for the first firing rollback alert in Prometheus, the controller's rollback and
    the gateway's recovery; removes the fault; reads every acknowledged write back through the gateway
    (legacy, once the kill switch is on); then runs `cutover reconcile --source LEGACY --target
    MEMORYOS --after-rollback LOG --repair` as the runbook does. PROMOTE (exit 0) when the alert
    fired, the flags rolled back, the gateway recovered, the client error rate stayed at most the
    plan's fallback target, no acknowledged write is missing from legacy and reconciliation reached
    parity; otherwise HOLD with the reasons (exit 1). A component that does not answer: exit 2,
    nothing written.
    """
    from cutover.migration.options import parse_uri
    from cutover.ops.drill import Components, Drill, Stores, Traffic, parse_faults
    from cutover.plan.model import load_plan

    plan = load_plan(file) if file is not None else common.project(project_dir, stack)[0]
    if phase is not None:
        plan.index(phase)
    faults = parse_faults(fault)
    for uri in (legacy, memoryos):
        parse_uri(uri)
    folder = evidence_dir(out_dir, project_dir, stack)
    components = Components(gateway, admin, admin_token(token_file), prometheus, controller)
    drill = Drill(
        plan,
        stack,
        components,
        Stores(legacy, memoryos, rollback_log),
        faults,
        timeout,
        Traffic(gateway, namespace, clients, rate),
        say=lambda m: out.print(m, highlight=False, soft_wrap=True),
    )
    ev = drill.run(phase)
    path = write_new(folder / ev.phase, "drill", ev.to_json())
    if ev.passed:
        out.print(f"PROMOTE: wrote {path}", highlight=False, soft_wrap=True)
        return
    for reason in ev.reasons:
        err.print(f"  {reason}", highlight=False, soft_wrap=True)
    err.print(f"HOLD: wrote {path}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
