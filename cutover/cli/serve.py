"""`cutover serve`: the memory gateway."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from cutover.cli import common
from cutover.cli.common import ProjectDir, err
from cutover.plan.errors import CutoverError
from cutover.plan.model import load_plan

commands = typer.Typer()


@commands.command("serve")
def serve_cmd(
    stack: str = typer.Option("staging", "--stack", "-s", help="stack whose plan and phase to serve"),
    phase: str | None = typer.Option(
        None, "--phase", "-p", help="phase (default: the stack's phase; with --plan and --flagd, the live flags' phase)"
    ),
    port: int = typer.Option(8080, "--port", help="public API port"),
    admin_port: int | None = typer.Option(None, "--admin-port", help="admin API port on 127.0.0.1 (default: port + 1)"),
    host: str = typer.Option("127.0.0.1", "--host", help="public API address"),
    data_dir: Path = typer.Option(Path("data"), "--data-dir", "-d", help="stores, outbox, flag file and admin token"),
    legacy: str | None = typer.Option(
        None, "--legacy", help="legacy store: sqlite:PATH or http(s)://URL (default: DATA/legacy.db)"
    ),
    memoryos: str | None = typer.Option(
        None, "--memoryos", help="MemoryOS store: sqlite:PATH or http(s)://URL (default: DATA/memoryos.db)"
    ),
    flags_file: Path | None = typer.Option(
        None, "--flags-file", help="use this flag file as is (default: render DATA/flags.json)"
    ),
    flag_poll_ms: int = typer.Option(500, "--flag-poll-ms", help="how often the flag file is re-read"),
    flagd: str | None = typer.Option(
        None, "--flagd", help="HOST:PORT of a flagd daemon (the OpenFeature Operator's sidecar) instead of a flag file"
    ),
    plan_file: Path | None = typer.Option(
        None, "--plan", help="plan file; with it the stack file is not read (in a pod: the plan ConfigMap)"
    ),
    drain_s: float = typer.Option(30.0, "--drain-timeout", help="on SIGTERM, seconds to let the outbox drain"),
    background: str = typer.Option(
        "process",
        "--background",
        help="where the mirror worker and shadow reads run: "
        "process (a niced child process) or thread (threads of the server)",
    ),
    auth: str = typer.Option(
        "none",
        "--auth",
        help="public API authentication: none, tokens:PATH (bearer tokens -> namespace prefixes) "
        "or trusted-proxy:CIDR[,CIDR] (see the gateway runbook)",
    ),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth", help="allow a non-loopback --host with --auth none (anyone may read and write)"
    ),
    project_dir: Path | None = ProjectDir,
) -> None:
    """Run the memory gateway on embedded defaults: two SQLite stores and the flag file of the stack's phase.

    On SIGTERM or Ctrl-C it finishes open requests, lets the mirror outbox drain (--drain-timeout), and
    exits; entries still waiting stay in the outbox and drain on the next start.
    """
    from cutover.flags import document as flagmod
    from cutover.gateway.app import admin_token, run
    from cutover.gateway.auth import is_loopback, load_auth
    from cutover.gateway.service import Gateway
    from cutover.store.uri import open_store

    if plan_file is not None:
        plan, kill = load_plan(plan_file), False
        if phase is None and flagd is None and flags_file is None:
            raise CutoverError(
                "--plan needs --phase (or a flag source whose flags name the phase: --flags-file or --flagd)",
                fix="name the phase to serve, e.g. --phase shadow",
            )
    else:
        plan, cfg = common.project(project_dir, stack)
        phase, kill = phase or cfg.phase, cfg.killSwitch
    if phase is not None:
        plan.index(phase)
    if background not in ("process", "thread"):
        raise CutoverError(f"--background {background!r}", fix="use process or thread")
    public_auth = load_auth(auth)
    if not is_loopback(host) and not public_auth.enabled and not insecure_no_auth:
        raise CutoverError(
            f"--host {host} is not a loopback address and --auth is none: anyone who reaches it could read "
            "and write every namespace",
            fix="give --auth tokens:PATH or --auth trusted-proxy:CIDR, or --insecure-no-auth to accept that",
        )
    if not is_loopback(host) and not public_auth.enabled:
        err.print(f"[yellow]warning:[/] --host {host} with --auth none (--insecure-no-auth): no authentication")
    os.umask(0o077)  # stores, WALs, outboxes, flag file, token: owner only, from creation
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    flag_source: Path | str  # the flag file, or flagd://HOST:PORT
    if flagd is not None:
        if flags_file is not None:
            raise CutoverError("--flagd and --flags-file exclude each other", fix="give one flag source")
        if ":" not in flagd or not flagd.rpartition(":")[2].isdigit():
            raise CutoverError(f"--flagd {flagd!r} is not HOST:PORT", fix="e.g. --flagd localhost:8013")
        flag_source = f"flagd://{flagd}"
    elif flags_file is None:
        flags_file = data_dir / "flags.json"
        assert phase is not None  # without --flagd a phase is given or the stack's
        flags_file.write_text(flagmod.dumps(flagmod.render_flags(plan, phase, stack, kill_switch=kill)))
        flag_source = flags_file
    else:
        flag_source = flags_file
    gw = Gateway(
        plan,
        phase,
        stack,
        open_store(legacy or f"sqlite:{data_dir / 'legacy.db'}", "legacy", autocheckpoint=False),
        open_store(memoryos or f"sqlite:{data_dir / 'memoryos.db'}", "memoryos", autocheckpoint=False),
        flag_source,
        data_dir,
        flag_poll_ms=flag_poll_ms,
        background=background == "process",
    )
    token, where = admin_token(data_dir)
    admin_port = admin_port or port + 1
    err.print(
        f"cutover gateway: stack {stack}, phase {gw.phase}, http://{host}:{port} (admin http://127.0.0.1:{admin_port}, "
        f"token in {where}), auth {public_auth.describe()}, flags {flag_source}, data {data_dir}"
    )
    run(gw, host, port, admin_port, token, drain_s=drain_s, auth=public_auth)
