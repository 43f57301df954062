"""`cutover loadtest`, `analyze`, `report` and `gate`: samples, verdicts, evidence and the gate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from cutover.cli import common
from cutover.cli.common import PlanFile, err, out
from cutover.judge.evidence import Evidence, check_gate
from cutover.judge.share import expected_share
from cutover.ops.evidencestore import load_store
from cutover.plan.campaign import PhaseClock
from cutover.plan.errors import CutoverError
from cutover.plan.model import EvidenceKind, Plan
from cutover.plan.project import loadtests_dir
from cutover.render.locust import SCENARIOS, headless_args, scenario_file

if TYPE_CHECKING:
    from cutover.judge.verdict import Verdict

commands = typer.Typer()


@commands.command("gate")
def gate_cmd(
    phase: str = typer.Option(..., "--phase", "-p", help="phase whose entry gate to check"),
    evidence: list[str] = typer.Option(
        [], "--evidence", "-e", help="evidence file, directory or configmap:NAMESPACE (repeatable)"
    ),
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
    result = check_gate(plan, phase, load_store(evidence), stack, PhaseClock(since, scale=time_scale))
    for reason in result.reasons:
        (out if result.passed else err).print(f"  - {reason}")
    for why in result.ignored:
        err.print(f"  - not counted: {why}")
    out.print(f"gate into {phase!r}: {'OPEN' if result.passed else 'CLOSED'}")
    if not result.passed:
        raise typer.Exit(1)


@commands.command("analyze")
def analyze_cmd(
    samples: list[Path] | None = typer.Argument(None, help="sample files (JSON lines) from a Locust run"),
    prometheus: str | None = typer.Option(
        None,
        "--prometheus",
        help="judge the real traffic instead: the gateway's histograms and counters by cohort in this Prometheus",
    ),
    window: str = typer.Option("30m", "--window", help="with --prometheus: the window judged, ending now"),
    phase: str | None = typer.Option(
        None, "--phase", "-p", help="phase the samples were collected in (default: the one phase they carry)"
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="writes verdict.json, report.md and PNG plots here"),
    kind: str = typer.Option("verdict", "--kind", help="verdict (canary vs control), baseline or soak"),
    stack: str | None = typer.Option(None, "--stack", "-s", help="stack the evidence applies to"),
    treatment_share: float | None = typer.Option(
        None, "--treatment-share", help="configured treatment share (default: the phase's percentage)"
    ),
    evidence_store: str | None = typer.Option(
        None,
        "--evidence-store",
        help="also add the evidence to this store: a directory, or configmap:NAMESPACE (where a cluster gate reads)",
    ),
    file: Path | None = PlanFile,
) -> None:
    """Judge treatment against control: a verdict (PROMOTE, HOLD or ROLLBACK) with every reason, as gate evidence.

    From sample files, or with --prometheus from the gateway's metrics over --window (binned data).
    Exit code 0 for PROMOTE, 1 for HOLD, 3 for ROLLBACK.
    """
    from cutover.judge import samples as sampling
    from cutover.judge import soak
    from cutover.judge import verdict as analysis
    from cutover.judge.report import write_analysis

    plan = common.plan(file)
    if prometheus is not None:
        if samples:
            raise CutoverError(
                "both sample files and --prometheus given", fix="judge one source: the samples or the Prometheus window"
            )
        if kind != "verdict":
            raise CutoverError(f"--kind {kind} needs per-request samples", fix="drop --prometheus, pass the samples")
        if phase is None:
            raise CutoverError("--prometheus needs the phase", fix="name the phase: --phase PHASE")
        verdict = _binned_verdict(plan, prometheus, window, phase, treatment_share)
        ev = write_analysis(verdict, [], plan, phase, stack, out_dir, title=f"Canary analysis (Prometheus, {window})")
        _store(evidence_store, ev)
        _print_verdict("verdict", phase, verdict, out_dir)
    if not samples:
        raise CutoverError("no sample files", fix="pass the sample files a Locust run wrote, or --prometheus URL")
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
    _store(evidence_store, write_analysis(verdict, data, plan, phase, stack, out_dir, kind=evidence_kind, title=title))
    _print_verdict(kind, phase, verdict, out_dir)


def _store(store: str | None, ev: Evidence) -> None:
    if store is not None:
        from cutover.ops.evidencestore import save

        out.print(f"evidence added to {save(store, ev)}", highlight=False)


def _print_verdict(kind: str, phase: str, verdict: Verdict, out_dir: Path) -> NoReturn:
    (out if verdict.verdict == "PROMOTE" else err).print(
        f"{kind} for phase {phase}: {verdict.verdict} (score {verdict.score})"
    )
    for reason in verdict.reasons:
        out.print(f"  - {reason}", highlight=False)
    out.print(f"evidence: {out_dir / 'verdict.json'}; report: {out_dir / 'report.md'}")
    raise typer.Exit({"PROMOTE": 0, "HOLD": 1, "ROLLBACK": 3}[verdict.verdict])


def _binned_verdict(plan: Plan, url: str, window: str, phase: str, treatment_share: float | None) -> Verdict:
    """The canary's verdict from the gateway's histograms and counters by cohort over `window`."""
    import httpx

    from cutover.judge import binned
    from cutover.ops.prometheus import query
    from cutover.plan.durations import format_duration, parse_duration
    from cutover.render.promql import PromQL

    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        raise CutoverError(f"--window: {exc}", fix="a Prometheus duration such as 30m or 2h") from None
    if seconds < 1:
        raise CutoverError("--window: at least 1s", fix="a Prometheus duration such as 30m or 2h")
    window = format_duration(round(seconds))  # as Prometheus writes it (1.5h is 90m)
    eff = plan.effective(phase)
    q = PromQL(plan, window)
    try:
        on = query(url, f"max by (phase) (max_over_time({q.series('phase_info')}[{window}])) > 0")
        buckets = query(url, q.increase("duration", by="le, cohort, op", suffix="_bucket"))
        requests = query(url, q.increase("requests", by="cohort, op, outcome"))
        drift_sum = query(url, q.increase("drift", by="measure", suffix="_sum", cohort_label=False))
        drift_count = query(url, q.increase("drift", by="measure", suffix="_count", cohort_label=False))
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise CutoverError(
            f"cannot query Prometheus at {url}: {exc}", fix="check --prometheus (its base URL)"
        ) from None
    phases = {str(r["metric"].get("phase", "")) for r in on}
    if phases - {phase}:
        raise CutoverError(
            f"the window holds phases {', '.join(sorted(phases))} (the gateway's phase_info)",
            fix=f"judge a window inside phase {phase}: a shorter --window",
        )
    source = f"Prometheus {url}, the gateway's histograms and counters over {window}"
    data = binned.from_prometheus(buckets, requests, drift_sum, drift_count, source)
    return binned.judge_binned(data, eff.analysis, expected_share(eff, treatment_share))


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
