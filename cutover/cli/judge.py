"""`cutover loadtest`, `analyze`, `report` and `gate`: samples, verdicts, evidence and the gate."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cutover.cli import common
from cutover.cli.common import PlanFile, err, out
from cutover.judge.evidence import check_gate, load_evidence
from cutover.judge.share import expected_share
from cutover.plan.errors import CutoverError
from cutover.plan.model import EvidenceKind
from cutover.plan.project import loadtests_dir
from cutover.render.locust import SCENARIOS, headless_args, scenario_file

commands = typer.Typer()


@commands.command("gate")
def gate_cmd(
    phase: str = typer.Option(..., "--phase", "-p", help="phase whose entry gate to check"),
    evidence: list[Path] = typer.Option([], "--evidence", "-e", help="evidence file or directory (repeatable)"),
    stack: str | None = typer.Option(None, "--stack", "-s", help="only count evidence for this stack"),
    flags_file: Path | None = typer.Option(
        None,
        "--flags-file",
        help="the live flag file: when the phase began (evidence before it and the minimum duration)",
    ),
    featureflag: str | None = typer.Option(
        None, "--featureflag", help="in a cluster: NAMESPACE/NAME of the FeatureFlag, read as --flags-file is"
    ),
    time_scale: float = typer.Option(
        1.0, "--time-scale", min=1, help="divide the phases' minimum durations by this (rehearsals: a compressed clock)"
    ),
    file: Path | None = PlanFile,
) -> None:
    """Check the entry gate of a phase against evidence: exit 0 when open, 1 with the reasons when closed.

    With the live flags (--flags-file or --featureflag), also when the phase being left began: the
    evidence must be newer, and its minimum duration spent. Without them that part is not checked
    (`cutover flags --phase` and `pulumi up` check it when they move the phase)."""
    plan = common.plan(file)
    since = None
    if flags_file or featureflag:
        from cutover.cli.ops import flag_backend
        from cutover.flags.state import phase_since

        since = phase_since(flag_backend(flags_file, featureflag).read())
    result = check_gate(plan, phase, load_evidence(evidence), stack, since=since, time_scale=time_scale)
    for reason in result.reasons:
        (out if result.passed else err).print(f"  - {reason}")
    for why in result.ignored:
        err.print(f"  - not counted: {why}")
    out.print(f"gate into {phase!r}: {'OPEN' if result.passed else 'CLOSED'}")
    if not result.passed:
        raise typer.Exit(1)


@commands.command("analyze")
def analyze_cmd(
    samples: list[Path] = typer.Argument(..., help="sample files (JSON lines) from a Locust run"),
    phase: str | None = typer.Option(
        None, "--phase", "-p", help="phase the samples were collected in (default: the one phase they carry)"
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="writes verdict.json, report.md and PNG plots here"),
    kind: str = typer.Option("verdict", "--kind", help="verdict (canary vs control), baseline or soak"),
    stack: str | None = typer.Option(None, "--stack", "-s", help="stack the evidence applies to"),
    treatment_share: float | None = typer.Option(
        None, "--treatment-share", help="configured treatment share (default: the phase's percentage)"
    ),
    file: Path | None = PlanFile,
) -> None:
    """Judge treatment against control: a verdict (PROMOTE, HOLD or ROLLBACK) with every reason, as gate evidence.

    Exit code 0 for PROMOTE, 1 for HOLD, 3 for ROLLBACK.
    """
    from cutover.judge import samples as sampling
    from cutover.judge import soak
    from cutover.judge import verdict as analysis
    from cutover.judge.report import write_analysis

    plan = common.plan(file)
    try:
        data = sampling.load_samples(samples)
    except (sampling.SampleError, OSError) as exc:
        raise CutoverError(str(exc), fix="pass the --samples file(s) a cutover Locust scenario wrote") from None
    if phase is None:
        try:
            phase = sampling.samples_phase(data)
        except sampling.SampleError as exc:
            raise CutoverError(str(exc), fix="name the phase: --phase PHASE") from None
    eff = plan.effective(phase)
    evidence_kind: EvidenceKind
    if kind == "verdict":
        verdict = analysis.judge(data, eff.analysis, expected_share(eff, treatment_share))
        title = "Canary analysis"
        evidence_kind = "verdict"
    elif kind == "baseline":
        verdict, title = analysis.judge_baseline(data, eff.analysis), "Baseline"
        evidence_kind = "baseline"
    elif kind == "soak":
        mon = eff.monitoring
        verdict = soak.judge_soak(
            data, eff.analysis, eff.abort_triggers.error_rate, mon.recall_p99_ms, mon.recall_availability
        )
        title = "Soak"
        evidence_kind = "soak"
    else:
        raise CutoverError(f"unknown --kind {kind!r}", fix="use verdict, baseline or soak")
    write_analysis(verdict, data, plan, phase, stack, out_dir, kind=evidence_kind, title=title)
    (out if verdict.verdict == "PROMOTE" else err).print(
        f"{kind} for phase {phase}: {verdict.verdict} (score {verdict.score})"
    )
    for reason in verdict.reasons:
        out.print(f"  - {reason}", highlight=False)
    out.print(f"evidence: {out_dir / 'verdict.json'}; report: {out_dir / 'report.md'}")
    raise typer.Exit({"PROMOTE": 0, "HOLD": 1, "ROLLBACK": 3}[verdict.verdict])


@commands.command("report")
def report_cmd(
    evidence: list[Path] = typer.Option(..., "--evidence", "-e", help="evidence files or directories (repeatable)"),
    out_dir: Path = typer.Option(Path("out/report"), "--out", "-o", help="where campaign-report.md goes"),
    file: Path | None = PlanFile,
) -> None:
    """Build the campaign's final report (phase-5 post-mortem) from every phase's evidence."""
    from cutover.judge.report import campaign_report

    path = campaign_report(common.plan(file), evidence, out_dir)
    out.print(f"campaign report: {path}")


@commands.command("loadtest")
def loadtest_cmd(
    scenario: str = typer.Argument(..., help="canary, soak or baseline (loadtests/<scenario>.py)"),
    host: str = typer.Option("http://127.0.0.1:8080", "--host", help="the gateway (loopback unless --allow-remote)"),
    users: int = typer.Option(20, "--users", "-u", min=1),
    spawn_rate: float = typer.Option(10, "--spawn-rate", "-r"),
    run_time: str = typer.Option("60s", "--run-time", "-t", help="bounded run time, e.g. 30s, 10m"),
    samples: Path = typer.Option(Path("out/samples.jsonl"), "--samples", help="per-request samples (JSON lines)"),
    processes: int = typer.Option(1, "--processes", help="Locust worker processes (more load)"),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="permit a non-loopback host"),
    extra: list[str] = typer.Option([], "--locust-arg", help="passed to locust as is (repeatable)"),
    locustfiles: Path | None = typer.Option(
        None,
        "--locustfiles",
        help="directory of the scenarios (default: the ones shipped with cutover; in a pod: the locustfiles ConfigMap)",
    ),
) -> None:
    """Run a Locust scenario headless, bounded in time, and write per-request samples plus Locust's CSV stats."""
    import subprocess
    from urllib.parse import urlparse

    if scenario not in SCENARIOS:
        raise CutoverError(f"unknown scenario {scenario!r}", fix=f"use one of: {', '.join(SCENARIOS)}")
    hostname = urlparse(host).hostname or ""
    if not allow_remote and not (hostname in ("localhost", "::1") or hostname.startswith("127.")):
        raise CutoverError(f"{host} is not a loopback address", fix="load tests target 127.0.0.1 unless --allow-remote")
    locustfile = Path(scenario_file(str(locustfiles or loadtests_dir()), scenario))
    if not locustfile.is_file():
        raise CutoverError(
            "no such scenario file", file=str(locustfile), fix="point --locustfiles at the loadtests/ directory"
        )
    samples.parent.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "locust",
        *headless_args(
            str(locustfile),
            host=host,
            users=users,
            spawn_rate=spawn_rate,
            run_time=run_time,
            samples=str(samples),
            csv=str(samples.with_suffix("")),
        ),
        *extra,
    ]
    if processes > 1:
        args += ["--processes", str(processes)]
    out.print(f"locust {scenario}: {users} users, {run_time}, {host}; samples -> {samples}")
    rc = subprocess.call(args, cwd=locustfile.parent)
    raise typer.Exit(rc)
