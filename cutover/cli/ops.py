"""`cutover flags` and `cutover rehearse`: change the live flags; run the whole campaign on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cutover.cli import common
from cutover.cli.common import ProjectDir, err, out
from cutover.flags.state import READ_PATHS
from cutover.plan.errors import CutoverError
from cutover.plan.project import find_project

if TYPE_CHECKING:
    from cutover.flags.backend import FlagBackend

commands = typer.Typer()
READ_PATH_CHOICES = ", ".join(READ_PATHS[:-1]) + f" or {READ_PATHS[-1]}"  # legacy, shadow or memoryos


@commands.command("rehearse")
def rehearse_cmd(
    out_dir: Path = typer.Option(Path("out/rehearsal"), "--out", "-o", help="report, evidence, logs and data go here"),
    phases: list[str] = typer.Option([], "--phases", help="phases to run (repeatable; default all)"),
    scale: float = typer.Option(30.0, "--time-scale", help="divide rule windows and for: durations by this"),
    project_dir: Path | None = ProjectDir,
) -> None:
    """Run the whole campaign on this machine, on loopback, with real Prometheus, Alertmanager, the
    gateway, Locust and the flag file; write a report; exit non-zero if any check fails."""
    import shutil as _shutil

    from cutover.ops.rehearsal import Rehearsal

    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        if not _shutil.which(binary):
            raise CutoverError(f"{binary} not found", fix="apt-get install prometheus prometheus-alertmanager")
    if out_dir.exists():
        _shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    project = find_project(project_dir).resolve()
    r = Rehearsal(project, out_dir.resolve(), scale, say=lambda m: out.print(m, highlight=False))
    raise typer.Exit(r.run(phases or r.plan.phase_names))


@commands.command("flags")
def flags_cmd(
    stack: str = typer.Option("staging", "--stack", "-s", help="stack (plan and labels)"),
    flags_file: Path | None = typer.Option(None, "--flags-file", help="the gateway's flag file (embedded default)"),
    featureflag: str | None = typer.Option(
        None, "--featureflag", help="in a cluster: NAMESPACE/NAME of the FeatureFlag"
    ),
    phase: str | None = typer.Option(None, "--phase", "-p", help="set the flags of this phase"),
    read_path: str | None = typer.Option(None, "--read-path", help=f"set the treatment read path: {READ_PATH_CHOICES}"),
    percentage: float | None = typer.Option(None, "--percentage", min=0, max=100, help="set the treatment percentage"),
    kill_switch: str | None = typer.Option(None, "--kill-switch", help="on or off"),
    prometheus: str | None = typer.Option(
        None, "--prometheus", help="Prometheus URL to watch error rate and p99 after a change"
    ),
    watch: float = typer.Option(0, "--watch", help="seconds to watch after a change (needs --prometheus)"),
    evidence: list[Path] = typer.Option(
        [],
        "--evidence",
        "-e",
        help="gate evidence: file, directory or configmap:NAMESPACE (repeatable; a forward --phase needs it)",
    ),
    force: bool = typer.Option(False, "--force", help="move forward although the gate is closed (needs --reason)"),
    reason: str | None = typer.Option(None, "--reason", help="why: recorded with the change (and the rollback)"),
    time_scale: float = typer.Option(
        1.0, "--time-scale", min=1, help="divide the phases' minimum durations by this (rehearsals: a compressed clock)"
    ),
    log: Path | None = typer.Option(
        None, "--log", help="the rollback log a rollback is added to (default: rollbacks.jsonl beside the flag file)"
    ),
    project_dir: Path | None = ProjectDir,
) -> None:
    """Show the live flag state, or change it: write, read back to verify, then watch error rate and p99.

    A forward --phase goes through the same gate as `pulumi up` (one phase at a time, passing
    evidence, the phase's minimum duration spent since its start, which the flags record); going
    back, less treatment and the kill switch are always allowed. Every change is recorded in the
    flags' metadata (who, why, when; a phase change or a rollback starts the phase anew); a
    rollback is also added to the rollback log that `cutover reconcile --after-rollback` reads.
    A change is refused (exit 2, nothing written) when the flags changed since this command read
    them (the controller or someone else wrote meanwhile): read them again, then repeat it.

    The immediate rollback of the runbook: `cutover flags --flags-file data/flags.json --kill-switch on`.
    """
    from cutover.flags.change import change, log_rollback, target_state
    from cutover.flags.state import FlagState, FlagStateError, phase_since, state_of
    from cutover.judge.evidence import check_transition
    from cutover.ops.evidencestore import load_store
    from cutover.plan.campaign import PhaseClock

    plan, _cfg = common.project(project_dir, stack)
    backend = flag_backend(flags_file, featureflag)
    since: float | None = None
    seen = backend.read_versioned()  # the write names its version: refused if the flags change meanwhile
    try:
        live = seen.flags()
        since = phase_since(live)
        state = state_of(live)
        out.print(f"now: {state.describe(plan)}", highlight=False)
    except FlagStateError as exc:
        if phase is None:
            raise CutoverError(
                f"the flag set cannot be read: {exc}", fix="write a good one: add --phase PHASE (the phase to serve)"
            ) from None
        out.print(f"now: unreadable ({exc}); --phase {phase} writes a new flag set", highlight=False)
        state = FlagState(phase)
    if kill_switch not in (None, "on", "off"):
        raise CutoverError(f"--kill-switch {kill_switch!r}", fix="use on or off")
    if read_path is not None and read_path not in READ_PATHS:
        raise CutoverError(f"--read-path {read_path!r}", fix=f"use {READ_PATH_CHOICES}")
    if phase is None and read_path is None and percentage is None and kill_switch is None:
        return
    kill = None if kill_switch is None else kill_switch == "on"
    new = target_state(plan, state, phase=phase, kill_switch=kill, percentage=percentage, read_path=read_path)
    if force and not reason:
        raise CutoverError("--force needs --reason", fix='say why, e.g. --reason "INC-123: gate evidence lost"')

    def gate(current: str, target: str) -> object:  # a forward --phase: the same gate as `pulumi up`
        clock = PhaseClock(since, scale=time_scale)
        return check_transition(plan, current, target, load_store(evidence), stack, clock)

    applied = change(
        backend,
        plan,
        stack,
        state,
        new,
        seen=seen,
        by="manual",
        reason=reason or None,
        gate=gate if phase is not None else None,
        force=force,
        warn=lambda message: err.print(message, highlight=False),
    )
    out.print(f"set and verified: {new.describe(plan)}", highlight=False)
    if applied.level:
        where = log or (flags_file.parent / "rollbacks.jsonl" if flags_file else Path("rollbacks.jsonl"))
        log_rollback(where, applied.rollback(plan, "manual", {"reason": applied.change.reason, "by": "cutover flags"}))
        out.print(f"rollback ({applied.level}) recorded in {where}", highlight=False)
    if watch and prometheus:
        from cutover.ops.watch import watch_figures

        for line in watch_figures(plan, prometheus, watch):
            out.print(line, highlight=False)


def flag_backend(flags_file: Path | None, featureflag: str | None) -> FlagBackend:
    """The flags a command changes: the embedded gateway's flag file, or the FeatureFlag in a cluster."""
    from cutover.flags.backend import FlagFile
    from cutover.ops.featureflag import FeatureFlagObject

    if bool(flags_file) == bool(featureflag):
        raise CutoverError(
            "name one flag source", fix="--flags-file PATH (embedded gateway) or --featureflag NAMESPACE/NAME"
        )
    if featureflag:
        ns, _, name = featureflag.partition("/")
        if not ns or not name:
            raise CutoverError(
                f"--featureflag {featureflag!r} is not NAMESPACE/NAME", fix="e.g. memory/memoryos-rollout-flags"
            )
        return FeatureFlagObject(name, ns)
    assert flags_file is not None  # exactly one flag source was named
    if not flags_file.is_file():
        raise CutoverError("no such flag file", file=str(flags_file), fix="the gateway writes it in its --data-dir")
    return FlagFile(flags_file)


MIN_SECRET_CHARS = 16


def webhook_secret(secret_file: Path | None) -> str:
    """The shared secret Alertmanager sends: --secret-file, else $CUTOVER_WEBHOOK_SECRET."""
    import os

    if secret_file is not None:
        if not secret_file.is_file():
            raise CutoverError("no such secret file", file=str(secret_file), fix="mount the webhook Secret there")
        secret = secret_file.read_text(encoding="utf-8").strip()
        where = str(secret_file)
    else:
        secret = os.environ.get("CUTOVER_WEBHOOK_SECRET", "").strip()
        where = "$CUTOVER_WEBHOOK_SECRET"
    if len(secret) < MIN_SECRET_CHARS:
        raise CutoverError(
            f"the webhook secret in {where} is {'missing' if not secret else 'too short'}",
            fix=f"at least {MIN_SECRET_CHARS} characters, e.g. `openssl rand -hex 24`",
        )
    return secret


@commands.command("controller")
def controller_cmd(
    stack: str = typer.Option("staging", "--stack", "-s", help="stack (plan and labels of the flags it writes)"),
    flags_file: Path | None = typer.Option(None, "--flags-file", help="the gateway's flag file (embedded default)"),
    featureflag: str | None = typer.Option(
        None, "--featureflag", help="in a cluster: NAMESPACE/NAME of the FeatureFlag it patches"
    ),
    secret_file: Path | None = typer.Option(
        None, "--secret-file", help="file holding the webhook's shared secret (default: $CUTOVER_WEBHOOK_SECRET)"
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="listen address (in a pod: 0.0.0.0)"),
    port: int = typer.Option(9095, "--port", help="listen port: POST /alertmanager, GET /status, GET /metrics"),
    log: Path = typer.Option(Path("rollbacks.jsonl"), "--log", help="the rollback log (`reconcile --after-rollback`)"),
    hold_down: str | None = typer.Option(
        None, "--hold-down", help="minimum time between two rollbacks (default: the plan's abort_triggers.hold_down)"
    ),
    prometheus: str | None = typer.Option(
        None, "--prometheus", help="also poll this Prometheus for firing rollback alerts (if Alertmanager is down)"
    ),
    poll_s: float = typer.Option(15, "--poll-interval", help="seconds between two polls of --prometheus"),
    plan_file: Path | None = typer.Option(
        None, "--plan", help="plan file; with it the stack file is not read (in a pod: the plan ConfigMap)"
    ),
    project_dir: Path | None = ProjectDir,
) -> None:
    """Run the rollback controller: Alertmanager posts the abort alerts here, and a firing alert
    labelled action=rollback rolls the flags back as its rollback_level says (kill switch, one step
    back, or the previous phase), at most once per hold-down. Every rollback is logged and counted."""
    import threading
    import time as _time

    import uvicorn

    from cutover.ops.controller import Controller
    from cutover.ops.webhook import controller_app
    from cutover.plan.durations import parse_duration
    from cutover.plan.model import load_plan

    plan = load_plan(plan_file) if plan_file is not None else common.project(project_dir, stack)[0]
    if hold_down is not None:
        try:
            seconds = parse_duration(hold_down)
        except ValueError:
            raise CutoverError(f"--hold-down {hold_down!r} is not a duration", fix="e.g. 15m or 30s") from None
        plan = plan.model_copy(update={"abort_triggers": plan.abort_triggers.model_copy(update={"hold_down": seconds})})
    ctrl = Controller(plan, stack, flag_backend(flags_file, featureflag), webhook_secret(secret_file), log)
    app = controller_app(ctrl)
    if prometheus:

        def poll() -> None:
            while True:
                _time.sleep(poll_s)
                try:
                    ctrl.poll(prometheus)
                except Exception as exc:  # a Prometheus that does not answer is retried, never fatal
                    common.err.print(f"controller: polling {prometheus} failed: {exc}", highlight=False)

        threading.Thread(target=poll, name="prometheus-poll", daemon=True).start()
    common.err.print(
        f"cutover controller: stack {stack}, flags {flags_file or featureflag}, http://{host}:{port}/alertmanager, "
        f"hold-down {plan.abort_triggers.hold_down:g} s, log {log}",
        highlight=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
