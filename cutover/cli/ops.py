"""`cutover flags` and `cutover rehearse`: change the live flags; run the whole campaign on loopback."""

from __future__ import annotations

from pathlib import Path

import typer

from cutover.cli import common
from cutover.cli.common import ProjectDir, out
from cutover.plan.errors import CutoverError
from cutover.plan.project import find_project

commands = typer.Typer()


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
    read_path: str | None = typer.Option(
        None, "--read-path", help="set the treatment read path: legacy, shadow or memoryos"
    ),
    percentage: float | None = typer.Option(None, "--percentage", min=0, max=100, help="set the treatment percentage"),
    kill_switch: str | None = typer.Option(None, "--kill-switch", help="on or off"),
    prometheus: str | None = typer.Option(
        None, "--prometheus", help="Prometheus URL to watch error rate and p99 after a change"
    ),
    watch: float = typer.Option(0, "--watch", help="seconds to watch after a change (needs --prometheus)"),
    project_dir: Path | None = ProjectDir,
) -> None:
    """Show the live flag state, or change it: write, read back to verify, then watch error rate and p99.

    The immediate rollback of the runbook: `cutover flags --flags-file data/flags.json --kill-switch on`.
    """
    import time as _time

    from cutover.ops.controller import (
        FeatureFlagObject,
        FlagBackend,
        FlagFile,
        FlagState,
        FlagStateError,
        apply_state,
        state_of,
    )

    plan, _cfg = common.project(project_dir, stack)
    if bool(flags_file) == bool(featureflag):
        raise CutoverError(
            "name one flag source", fix="--flags-file PATH (embedded gateway) or --featureflag NAMESPACE/NAME"
        )
    backend: FlagBackend
    if featureflag:
        ns, _, name = featureflag.partition("/")
        backend = FeatureFlagObject(name, ns)
    else:
        assert flags_file is not None  # exactly one flag source was named
        if not flags_file.is_file():
            raise CutoverError("no such flag file", file=str(flags_file), fix="the gateway writes it in its --data-dir")
        backend = FlagFile(flags_file)
    try:
        state = state_of(backend.read())
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
    if read_path not in (None, "legacy", "shadow", "memoryos"):
        raise CutoverError(f"--read-path {read_path!r}", fix="use legacy, shadow or memoryos")
    if phase is None and read_path is None and percentage is None and kill_switch is None:
        return
    if phase is not None:
        plan.index(phase)
        state = FlagState(phase)
    new = FlagState(
        state.phase,
        state.kill_switch if kill_switch is None else kill_switch == "on",
        state.percentage if percentage is None else percentage,
        state.read_path if read_path is None else read_path,
    )
    apply_state(backend, plan, new, stack)
    out.print(f"set and verified: {new.describe(plan)}", highlight=False)
    if watch and prometheus:
        import httpx

        from cutover.render.promql import PromQL

        promql = PromQL(plan, window="1m")
        q = {"error rate": promql.error_ratio(sep=" / "), "recall p99 (s)": promql.quantile(0.99, op="recall")}
        end = _time.monotonic() + watch
        while _time.monotonic() < end:
            figures = []
            for label, expr in q.items():
                try:
                    res = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()["data"][
                        "result"
                    ]
                    figures.append(f"{label} {float(res[0]['value'][1]):.4g}" if res else f"{label} no data")
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    figures.append(f"{label} unavailable ({type(exc).__name__})")
            out.print(f"{_time.strftime('%H:%M:%S')}  " + ", ".join(figures), highlight=False)
            _time.sleep(min(5, max(0.5, end - _time.monotonic())))
