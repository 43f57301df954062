"""The `cutover` command line: a thin shell over the plan, the renderers and the gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .durations import format_duration
from .errors import CutoverError
from .evidence import check_gate, check_transition, load_evidence
from .plan import Plan, load_plan
from .render import load_project, render, write_rendering

app = typer.Typer(
    help="Roll an agent memory service from jido_memory to MemoryOS, phase by phase.\n\n"
    "Every command reads the rollout plan (rollout.yaml) and the stack files (Pulumi.<stack>.yaml) "
    "of the project directory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plan_app = typer.Typer(help="Validate and show the rollout plan.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
dash_app = typer.Typer(help="Grafana dashboards rendered from the plan.", no_args_is_help=True)
app.add_typer(dash_app, name="dashboards")
metrics_app = typer.Typer(help="The metrics contract.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; give them room instead.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

ProjectDir = typer.Option(
    Path("."), "--project-dir", "-C", envvar="CUTOVER_PROJECT_DIR", help="directory holding Pulumi.yaml and the stack files"
)


def _flags_row(plan: Plan, phase: str) -> tuple[str, str, str]:
    f = plan.phase(phase).flags
    return f.read_path, f.write_mode, f.treatment.short()


def _changes(plan: Plan, i: int) -> str:
    """What entering phase i changes, in flag terms."""
    if i == 0:
        return "starting state"
    before, now = _flags_row(plan, plan.phases[i - 1].name), _flags_row(plan, plan.phases[i].name)
    diffs = [f"{n} {a}->{b}" for n, a, b in zip(("reads", "writes", "cohort"), before, now) if a != b]
    return ", ".join(diffs) or "no flag change"


@app.command("render")
def render_cmd(
    stack: str = typer.Option(..., "--stack", "-s", help="stack name: reads Pulumi.<stack>.yaml"),
    phase: Optional[str] = typer.Option(None, "--phase", "-p", help="phase to render (default: the stack's phase)"),
    all_phases: bool = typer.Option(False, "--all-phases", help="render every phase into DIR/<phase>/"),
    out_dir: Path = typer.Option(Path("out"), "--out", "-o", help="output directory"),
    kill_switch: Optional[bool] = typer.Option(
        None, "--kill-switch/--no-kill-switch", help="override the stack's kill switch"
    ),
    project_dir: Path = ProjectDir,
) -> None:
    """Write the flag set (flags.json) and the Kubernetes manifests (manifests/*.yaml) for a stack.

    For GitOps and kubectl users without Pulumi: `kubectl apply -f DIR/manifests/`.
    """
    plan, cfg = load_project(project_dir, stack)
    phases = plan.phase_names if all_phases else [phase or cfg.phase]
    table = Table(title=f"stack {stack}: {len(phases)} phase(s) rendered to {out_dir}")
    for col in ("phase", "min", "reads", "writes", "cohort", "change from previous phase", "files"):
        table.add_column(col)
    for name in phases:
        r = render(plan, stack, cfg, name, kill_switch)
        target = out_dir / name if all_phases else out_dir
        written = write_rendering(r, target)
        i = plan.index(name)
        table.add_row(
            name,
            format_duration(plan.phases[i].min_duration),
            *_flags_row(plan, name),
            _changes(plan, i) + (" [KILL SWITCH ON]" if r.kill_switch else ""),
            str(len(written)),
        )
    out.print(table)
    for secret in r.secrets:  # never written: the value is a Pulumi secret
        name = secret["metadata"]["name"]
        err.print(f"not written: Secret {name} (the gateway's admin token). `pulumi up` creates it from "
                  f"`pulumi config set --secret memoryos-rollout:adminToken ...`; with kubectl: kubectl -n "
                  f"{secret['metadata']['namespace']} create secret generic {name} --from-literal=token=...", highlight=False)


@plan_app.command("validate")
def plan_validate(
    file: Path = typer.Argument(Path("rollout.yaml"), help="plan file"),
) -> None:
    """Check a plan file; exit 0 when valid, 2 with the file, line, field and fix when not."""
    plan = load_plan(file)
    out.print(f"{file}: valid plan {plan.name!r}, {len(plan.phases)} phases ({' -> '.join(plan.phase_names)}), digest {plan.digest()}")


@plan_app.command("show")
def plan_show(
    phase: Optional[str] = typer.Option(None, "--phase", "-p", help="show one phase with its effective settings"),
    file: Path = typer.Option(Path("rollout.yaml"), "--file", "-f", help="plan file"),
    as_json: bool = typer.Option(False, "--json", help="print the effective settings as JSON"),
) -> None:
    """Print the phases, or one phase with every effective threshold, criterion and trigger."""
    plan = load_plan(file)
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
                str(e.index), e.name, format_duration(e.phase.min_duration), *_flags_row(plan, e.name),
                ", ".join(e.phase.exit_evidence) or "-",
            )
        out.print(table)
        return
    e = effs[0]
    out.print(f"[bold]{e.phase.title or e.name}[/bold]  (phase {e.index} of {len(plan.phases) - 1})")
    if e.phase.description:
        out.print(e.phase.description)
    f = e.phase.flags
    out.print(f"flags: treatment reads {f.read_path}; writes {f.write_mode}; treatment cohort: {f.treatment.describe()}")
    out.print(f"changes: {_changes(plan, e.index)}")
    for title, model in (("monitoring targets", e.monitoring), ("abort triggers", e.abort_triggers), ("analysis", e.analysis)):
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


@plan_app.command("transition")
def plan_transition(
    to: str = typer.Option(..., "--to", help="phase to enter"),
    from_: Optional[str] = typer.Option(None, "--from", help="phase the stack is in now (omit: nothing deployed yet)"),
    evidence: list[Path] = typer.Option([], "--evidence", "-e", help="evidence file or directory (repeatable)"),
    stack: Optional[str] = typer.Option(None, "--stack", "-s", help="only count evidence for this stack"),
    file: Path = typer.Option(Path("rollout.yaml"), "--file", "-f", help="plan file"),
) -> None:
    """Check a phase change the way the Pulumi program does: one phase forward through its gate, or back."""
    plan = load_plan(file)
    found = load_evidence(evidence)
    direction, gate = check_transition(plan, from_, to, found, stack)
    out.print(f"{from_ or '(nothing deployed)'} -> {to}: allowed ({direction})")
    for reason in (gate.reasons if gate else []):
        out.print(f"  - {reason}")


@app.command("gate")
def gate_cmd(
    phase: str = typer.Option(..., "--phase", "-p", help="phase whose entry gate to check"),
    evidence: list[Path] = typer.Option([], "--evidence", "-e", help="evidence file or directory (repeatable)"),
    stack: Optional[str] = typer.Option(None, "--stack", "-s", help="only count evidence for this stack"),
    file: Path = typer.Option(Path("rollout.yaml"), "--file", "-f", help="plan file"),
) -> None:
    """Check the entry gate of a phase against evidence: exit 0 when open, 1 with the reasons when closed."""
    plan = load_plan(file)
    result = check_gate(plan, phase, load_evidence(evidence), stack)
    for reason in result.reasons:
        (out if result.passed else err).print(f"  - {reason}")
    out.print(f"gate into {phase!r}: {'OPEN' if result.passed else 'CLOSED'}")
    if not result.passed:
        raise typer.Exit(1)


@dash_app.command("export")
def dashboards_export(
    out_dir: Path = typer.Option(Path("dashboards"), "--out", "-o", help="directory for <slug>.json"),
    file: Path = typer.Option(Path("rollout.yaml"), "--file", "-f", help="plan file"),
) -> None:
    """Regenerate the committed dashboards (dashboards/*.json) from the plan."""
    from . import dashboards

    boards = dashboards.build(load_plan(file))
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.json"):
        if old.stem not in boards:
            old.unlink()
    for slug, board in boards.items():
        (out_dir / f"{slug}.json").write_text(dashboards.dumps(board), encoding="utf-8")
        out.print(f"{out_dir / (slug + '.json')}: {board['title']}, {len(dashboards.queries(board))} queries")


@metrics_app.command("contract")
def metrics_contract(
    file: Path = typer.Option(Path("rollout.yaml"), "--file", "-f", help="plan file"),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="write the Markdown table here"),
) -> None:
    """Print (or write) the metrics contract as a Markdown table: name, type, labels, meaning."""
    from .metrics import contract_markdown

    text = contract_markdown(load_plan(file))
    if out_file:
        out_file.write_text(METRICS_PAGE_HEAD + text, encoding="utf-8")
        out.print(f"wrote {out_file}")
    else:
        print(text, end="")


@app.command("serve")
def serve_cmd(
    stack: str = typer.Option("staging", "--stack", "-s", help="stack whose plan and phase to serve"),
    phase: Optional[str] = typer.Option(None, "--phase", "-p", help="phase (default: the stack's phase)"),
    port: int = typer.Option(8080, "--port", help="public API port"),
    admin_port: Optional[int] = typer.Option(None, "--admin-port", help="admin API port on 127.0.0.1 (default: port + 1)"),
    host: str = typer.Option("127.0.0.1", "--host", help="public API address"),
    data_dir: Path = typer.Option(Path("data"), "--data-dir", "-d", help="stores, outbox, flag file and admin token"),
    legacy: Optional[str] = typer.Option(None, "--legacy", help="legacy store: sqlite:PATH or http(s)://URL (default: DATA/legacy.db)"),
    memoryos: Optional[str] = typer.Option(None, "--memoryos", help="MemoryOS store: sqlite:PATH or http(s)://URL (default: DATA/memoryos.db)"),
    flags_file: Optional[Path] = typer.Option(None, "--flags-file", help="use this flag file as is (default: render DATA/flags.json)"),
    flag_poll_ms: int = typer.Option(500, "--flag-poll-ms", help="how often the flag file is re-read"),
    flagd: Optional[str] = typer.Option(None, "--flagd", help="HOST:PORT of a flagd daemon (the OpenFeature Operator's "
                                        "sidecar) instead of a flag file"),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="plan file; with it the stack file is not read "
                                             "(in a pod: the plan ConfigMap)"),
    drain_s: float = typer.Option(30.0, "--drain-timeout", help="on SIGTERM, seconds to let the outbox drain"),
    background: str = typer.Option("process", "--background", help="where the mirror worker and shadow reads run: "
                                   "process (a niced child process) or thread (threads of the server)"),
    project_dir: Path = ProjectDir,
) -> None:
    """Run the memory gateway on embedded defaults: two SQLite stores and the flag file of the stack's phase.

    On SIGTERM or Ctrl-C it finishes open requests, lets the mirror outbox drain (--drain-timeout), and
    exits; entries still waiting stay in the outbox and drain on the next start.
    """
    from . import flags as flagmod
    from .gateway import Gateway
    from .server import admin_token, run
    from .stores import open_store

    if plan_file is not None:
        plan, kill = load_plan(plan_file), False
        if phase is None:
            raise CutoverError("--plan needs --phase", fix="name the phase to serve, e.g. --phase shadow")
    else:
        plan, cfg = load_project(project_dir, stack)
        phase, kill = phase or cfg.phase, cfg.killSwitch
    plan.index(phase)
    if background not in ("process", "thread"):
        raise CutoverError(f"--background {background!r}", fix="use process or thread")
    data_dir.mkdir(parents=True, exist_ok=True)
    if flagd is not None:
        if flags_file is not None:
            raise CutoverError("--flagd and --flags-file exclude each other", fix="give one flag source")
        if ":" not in flagd or not flagd.rpartition(":")[2].isdigit():
            raise CutoverError(f"--flagd {flagd!r} is not HOST:PORT", fix="e.g. --flagd localhost:8013")
        flag_source = f"flagd://{flagd}"
    elif flags_file is None:
        flags_file = data_dir / "flags.json"
        flags_file.write_text(flagmod.dumps(flagmod.render_flags(plan, phase, stack, kill_switch=kill)))
        flag_source = flags_file
    else:
        flag_source = flags_file
    gw = Gateway(
        plan, phase, stack,
        open_store(legacy or f"sqlite:{data_dir / 'legacy.db'}", "legacy", autocheckpoint=False),
        open_store(memoryos or f"sqlite:{data_dir / 'memoryos.db'}", "memoryos", autocheckpoint=False),
        flag_source, data_dir, flag_poll_ms=flag_poll_ms, background=background == "process",
    )
    token, where = admin_token(data_dir)
    admin_port = admin_port or port + 1
    err.print(f"cutover gateway: stack {stack}, phase {phase}, http://{host}:{port} (admin http://127.0.0.1:{admin_port}, "
              f"token in {where}), flags {flag_source}, data {data_dir}")
    run(gw, host, port, admin_port, token, drain_s=drain_s)


def _progress_reporter(total: int | None, unit: str):
    """A rich progress bar with rate and ETA on a terminal; plain lines every 5 s otherwise."""
    import time as _time

    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("[bold]migrate"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[rate]:>10} rec/s"), TimeRemainingColumn(), console=err)
        task = bar.add_task("migrate", total=total, rate="")
        bar.start()
        started = _time.monotonic()

        def update(counts, done: int) -> None:
            bar.update(task, completed=done, rate=f"{counts.read / max(_time.monotonic() - started, 1e-9):,.0f}")

        return update, bar.stop
    state = {"last": 0.0, "started": _time.monotonic()}

    def update(counts, done: int) -> None:
        now = _time.monotonic()
        if now - state["last"] >= 5:
            state["last"] = now
            pct = f" ({100 * done / total:.0f} % of {unit})" if total else ""
            rate = counts.read / max(now - state["started"], 1e-9)
            err.print(f"migrate: {counts.read:,} read, {counts.migrated:,} migrated, {counts.quarantined:,} quarantined, "
                      f"{rate:,.0f} rec/s{pct}", highlight=False)

    return update, lambda: None


@app.command("migrate")
def migrate_cmd(
    source: str = typer.Option(..., "--from", help="jsonl:PATH (a jido_memory export) or sqlite:PATH (the legacy store)"),
    target: str = typer.Option(..., "--to", help="sqlite:PATH (the MemoryOS store) or jsonl:PATH"),
    namespace: list[str] = typer.Option([], "--namespace", "-n", help="only these namespaces (repeatable; default all)"),
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="classification policy YAML (default: the built-in one)"),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: this worker takes the namespaces whose hash mod n is i"),
    batch: int = typer.Option(20000, "--batch", min=1, help="records per batch and checkpoint"),
    dry_run: bool = typer.Option(False, "--dry-run", help="write nothing; report what would happen"),
    on_error: str = typer.Option("quarantine", "--on-error", help="quarantine (default) or halt on the first bad record"),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="quarantine file (default: TARGET.quarantine.jsonl)"),
    restart: bool = typer.Option(False, "--restart", help="ignore a checkpoint and start from the beginning"),
    defer_index: bool = typer.Option(False, "--defer-index", help="bulk mode: build the text index once at the end "
                                     "(about 5x faster; text search misses new records until the run ends)"),
    report: Optional[Path] = typer.Option(None, "--report", help="write the JSON report here"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="processes preparing records from a jsonl: "
                                          "source (default: one per core, at most 4); 1: all in this process"),
) -> None:
    """Classify legacy records into tiers, backfill lifecycle and provenance metadata, and write them to MemoryOS.

    Safe on live data: batches, a durable checkpoint after each, resume after a crash (run the same
    command again), idempotent re-runs, --dry-run, --shard for parallel workers.
    """
    from .migration import Options, migrate, parse_shard, parse_uri
    from .policy import load_policy

    kind, path = parse_uri(source)
    total = path.stat().st_size if kind == "jsonl" and path.is_file() else None
    update, stop = _progress_reporter(total, "the source bytes" if total else "records")
    try:
        result = migrate(Options(source=source, target=target, policy=load_policy(policy_file), namespaces=namespace or None,
                                 shard=parse_shard(shard), batch=batch, dry_run=dry_run, on_error=on_error,
                                 quarantine=quarantine, restart=restart, defer_index=defer_index, progress=update,
                                 workers=workers))
    finally:
        stop()
    table = Table(title=f"migration {'(dry run) ' if dry_run else ''}{source} -> {target}")
    table.add_column("")
    table.add_column("value", justify="right")
    for k in ("read", "migrated", "unchanged", "quarantined", "skipped_other_shards", "kept_existing_fields"):
        table.add_row(k.replace("_", " "), f"{result[k]:,}")
    for tier in ("short", "mid", "long"):
        table.add_row(f"tier {tier}", f"{result['by_tier'].get(tier, 0):,}")
    for reason, n in result["quarantine_reasons"].items():
        table.add_row(f"quarantined: {reason}", f"{n:,}")
    table.add_row("elapsed", f"{result['elapsed_s']:.1f} s ({result['rate_per_s'] or 0:,.0f} rec/s)")
    table.add_row("resumed from checkpoint", "yes" if result["resumed"] else "no")
    out.print(table)
    if result["quarantined"] and not dry_run:
        out.print(f"quarantined records: {result['quarantine_file']}")
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result, indent=2) + "\n")


@app.command("reconcile")
def reconcile_cmd(
    source: str = typer.Option(..., "--source", help="the source of truth: sqlite:PATH or jsonl:PATH"),
    target: str = typer.Option(..., "--target", help="the store to check: sqlite:PATH or jsonl:PATH"),
    namespace: list[str] = typer.Option([], "--namespace", "-n", help="only these namespaces (repeatable)"),
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="classification policy for records without a tier"),
    repair_: bool = typer.Option(False, "--repair", help="copy what is missing or stale from the source, then check again"),
    delete_extra: bool = typer.Option(False, "--delete-extra", help="with --repair: delete target records the source lacks"),
    since: Optional[int] = typer.Option(None, "--since", help="only records observed at or after (epoch ms)"),
    until: Optional[int] = typer.Option(None, "--until", help="only records observed at or before (epoch ms)"),
    no_tier: bool = typer.Option(False, "--ignore-tier", help="compare id, version and text only"),
    report_dir: Optional[Path] = typer.Option(None, "--report", help="write reconcile.json and reconcile.md here"),
    after_rollback: Optional[Path] = typer.Option(None, "--after-rollback", help="the controller's rollback log: "
                                                  "reconcile the window around its latest rollback (tiers ignored)"),
) -> None:
    """Compare counts, checksums and ids per namespace and tier; exit 1 when parity fails."""
    from . import reconcile as rc
    from .policy import load_policy

    policy = load_policy(policy_file)
    window = (since or 0, until or 2**62) if (since or until) else None
    if after_rollback is not None:
        if not after_rollback.is_file():
            raise CutoverError("no rollback log", file=str(after_rollback), fix="the controller writes it (rollbacks.jsonl)")
        lines = [json.loads(x) for x in after_rollback.read_text().splitlines() if x.strip()]
        if not lines:
            raise CutoverError("the rollback log is empty", file=str(after_rollback))
        at = int(lines[-1]["at"] * 1000)
        window = (since or at - 3_600_000, until or 2**62)  # the hour before the rollback, up to now
        no_tier = True
    repaired = None
    if repair_:
        repaired = rc.repair(source, target, policy, namespace or None, window, delete_extra, compare_tier=not no_tier)
        report = repaired["after"]
    else:
        report = rc.compare(source, target, policy, namespace or None, window, compare_tier=not no_tier)
    if report_dir:
        j, m = rc.write_reports(report, report_dir, repaired)
        out.print(f"reports: {j}, {m}")
    if repaired:
        out.print(f"repair: {repaired['copied_missing']} copied, {repaired['replaced_stale']} stale replaced, "
                  f"{repaired['deleted_extra']} extra deleted")
    t = report["totals"]
    out.print(f"parity: {'yes' if report['parity'] else 'NO'} ({report['records_scanned']:,} records, {report['namespaces']} "
              f"namespaces; missing in target {t['missing_in_target']}, missing in source {t['missing_in_source']}, "
              f"mismatched {t['mismatched']})")
    if not report["parity"]:
        raise typer.Exit(1)


@app.command("analyze")
def analyze_cmd(
    samples: list[Path] = typer.Argument(..., help="sample files (JSON lines) from a Locust run"),
    phase: str = typer.Option(..., "--phase", "-p", help="phase the samples were collected in"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="writes verdict.json, report.md and PNG plots here"),
    kind: str = typer.Option("verdict", "--kind", help="verdict (canary vs control), baseline or soak"),
    stack: Optional[str] = typer.Option(None, "--stack", "-s", help="stack the evidence applies to"),
    treatment_share: Optional[float] = typer.Option(None, "--treatment-share", help="configured treatment share "
                                                    "(default: the phase's percentage)"),
    file: Path = typer.Option(Path("rollout.yaml"), "--file", "-f", help="plan file"),
) -> None:
    """Judge treatment against control: a verdict (PROMOTE, HOLD or ROLLBACK) with every reason, as gate evidence.

    Exit code 0 for PROMOTE, 1 for HOLD, 3 for ROLLBACK.
    """
    from . import analysis
    from .reporting import write_analysis

    plan = load_plan(file)
    eff = plan.effective(phase)
    try:
        data = analysis.load_samples(samples)
    except (analysis.SampleError, OSError) as exc:
        raise CutoverError(str(exc), fix="pass the --samples file(s) a cutover Locust scenario wrote") from None
    if kind == "verdict":
        share = treatment_share if treatment_share is not None else eff.phase.flags.treatment.percentage / 100
        if not 0 < share < 1:
            share = 0.5
        verdict = analysis.judge(data, eff.analysis, share)
        title = "Canary analysis"
    elif kind == "baseline":
        verdict, title = analysis.judge_baseline(data, eff.analysis), "Baseline"
    elif kind == "soak":
        verdict, title = analysis.judge_soak(data, eff.analysis, eff.abort_triggers.error_rate), "Soak"
    else:
        raise CutoverError(f"unknown --kind {kind!r}", fix="use verdict, baseline or soak")
    write_analysis(verdict, data, plan, phase, stack, out_dir, kind=kind, title=title)
    (out if verdict.verdict == "PROMOTE" else err).print(f"{kind} for phase {phase}: {verdict.verdict} (score {verdict.score})")
    for reason in verdict.reasons:
        out.print(f"  - {reason}", highlight=False)
    out.print(f"evidence: {out_dir / 'verdict.json'}; report: {out_dir / 'report.md'}")
    raise typer.Exit({"PROMOTE": 0, "HOLD": 1, "ROLLBACK": 3}[verdict.verdict])


@app.command("report")
def report_cmd(
    evidence: list[Path] = typer.Option(..., "--evidence", "-e", help="evidence files or directories (repeatable)"),
    out_dir: Path = typer.Option(Path("out/report"), "--out", "-o", help="where campaign-report.md goes"),
    file: Path = typer.Option(Path("rollout.yaml"), "--file", "-f", help="plan file"),
) -> None:
    """Build the campaign's final report (phase-5 post-mortem) from every phase's evidence."""
    from .reporting import campaign_report

    path = campaign_report(load_plan(file), evidence, out_dir)
    out.print(f"campaign report: {path}")


SCENARIOS = ("canary", "soak", "baseline")
LOADTESTS = Path(__file__).resolve().parent.parent / "loadtests"


@app.command("loadtest")
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
    locustfiles: Path = typer.Option(LOADTESTS, "--locustfiles", help="directory of the scenarios (in a pod: the "
                                     "locustfiles ConfigMap)"),
) -> None:
    """Run a Locust scenario headless, bounded in time, and write per-request samples plus Locust's CSV stats."""
    import subprocess
    from urllib.parse import urlparse

    if scenario not in SCENARIOS:
        raise CutoverError(f"unknown scenario {scenario!r}", fix=f"use one of: {', '.join(SCENARIOS)}")
    hostname = urlparse(host).hostname or ""
    if not allow_remote and not (hostname in ("localhost", "::1") or hostname.startswith("127.")):
        raise CutoverError(f"{host} is not a loopback address", fix="load tests target 127.0.0.1 unless --allow-remote")
    locustfile = locustfiles / f"{scenario}.py"
    if not locustfile.is_file():
        raise CutoverError("no such scenario file", file=str(locustfile), fix="point --locustfiles at the loadtests/ directory")
    samples.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(spawn_rate),
            "-t", run_time, "--host", host, "--samples", str(samples), "--csv", str(samples.with_suffix("")),
            "--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0", *extra]
    if processes > 1:
        args += ["--processes", str(processes)]
    out.print(f"locust {scenario}: {users} users, {run_time}, {host}; samples -> {samples}")
    rc = subprocess.call(args, cwd=locustfile.parent)
    raise typer.Exit(rc)


@app.command("rehearse")
def rehearse_cmd(
    out_dir: Path = typer.Option(Path("out/rehearsal"), "--out", "-o", help="report, evidence, logs and data go here"),
    phases: list[str] = typer.Option([], "--phases", help="phases to run (repeatable; default all)"),
    scale: float = typer.Option(30.0, "--time-scale", help="divide rule windows and for: durations by this"),
    project_dir: Path = ProjectDir,
) -> None:
    """Run the whole campaign on this machine, on loopback, with real Prometheus, Alertmanager, the
    gateway, Locust and the flag file; write a report; exit non-zero if any check fails."""
    import shutil as _shutil

    from .rehearsal import Rehearsal

    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        if not _shutil.which(binary):
            raise CutoverError(f"{binary} not found", fix="apt-get install prometheus prometheus-alertmanager")
    if out_dir.exists():
        _shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    r = Rehearsal(project_dir.resolve(), out_dir.resolve(), scale, say=lambda m: out.print(m, highlight=False))
    raise typer.Exit(r.run(phases or r.plan.phase_names))


@app.command("flags")
def flags_cmd(
    stack: str = typer.Option("staging", "--stack", "-s", help="stack (plan and labels)"),
    flags_file: Optional[Path] = typer.Option(None, "--flags-file", help="the gateway's flag file (embedded default)"),
    featureflag: Optional[str] = typer.Option(None, "--featureflag", help="in a cluster: NAMESPACE/NAME of the FeatureFlag"),
    phase: Optional[str] = typer.Option(None, "--phase", "-p", help="set the flags of this phase"),
    read_path: Optional[str] = typer.Option(None, "--read-path", help="set the treatment read path: legacy, shadow or memoryos"),
    percentage: Optional[float] = typer.Option(None, "--percentage", min=0, max=100, help="set the treatment percentage"),
    kill_switch: Optional[str] = typer.Option(None, "--kill-switch", help="on or off"),
    prometheus: Optional[str] = typer.Option(None, "--prometheus", help="Prometheus URL to watch error rate and p99 after a change"),
    watch: float = typer.Option(0, "--watch", help="seconds to watch after a change (needs --prometheus)"),
    project_dir: Path = ProjectDir,
) -> None:
    """Show the live flag state, or change it: write, read back to verify, then watch error rate and p99.

    The immediate rollback of the runbook: `cutover flags --flags-file data/flags.json --kill-switch on`.
    """
    import time as _time

    from .controller import FeatureFlagObject, FlagFile, FlagState, apply_state, state_of

    plan, _cfg = load_project(project_dir, stack)
    if bool(flags_file) == bool(featureflag):
        raise CutoverError("name one flag source", fix="--flags-file PATH (embedded gateway) or --featureflag NAMESPACE/NAME")
    if featureflag:
        ns, _, name = featureflag.partition("/")
        backend = FeatureFlagObject(name, ns)
    else:
        if not flags_file.is_file():
            raise CutoverError("no such flag file", file=str(flags_file), fix="the gateway writes it in its --data-dir")
        backend = FlagFile(flags_file)
    state = state_of(backend.read())
    out.print(f"now: {state.describe(plan)}", highlight=False)
    if kill_switch not in (None, "on", "off"):
        raise CutoverError(f"--kill-switch {kill_switch!r}", fix="use on or off")
    if read_path not in (None, "legacy", "shadow", "memoryos"):
        raise CutoverError(f"--read-path {read_path!r}", fix="use legacy, shadow or memoryos")
    if phase is None and read_path is None and percentage is None and kill_switch is None:
        return
    if phase is not None:
        plan.index(phase)
        state = FlagState(phase)
    new = FlagState(state.phase, state.kill_switch if kill_switch is None else kill_switch == "on",
                    state.percentage if percentage is None else percentage, state.read_path if read_path is None else read_path)
    apply_state(backend, plan, new, stack)
    out.print(f"set and verified: {new.describe(plan)}", highlight=False)
    if watch and prometheus:
        import httpx

        q = {"error rate": f'sum(rate({plan.metrics.requests}{{outcome="error"}}[1m])) / sum(rate({plan.metrics.requests}[1m]))',
             "recall p99 (s)": f'histogram_quantile(0.99, sum by (le) (rate({plan.metrics.duration}_bucket{{op="recall"}}[1m])))'}
        end = _time.monotonic() + watch
        while _time.monotonic() < end:
            figures = []
            for label, expr in q.items():
                try:
                    res = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()["data"]["result"]
                    figures.append(f"{label} {float(res[0]['value'][1]):.4g}" if res else f"{label} no data")
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    figures.append(f"{label} unavailable ({type(exc).__name__})")
            out.print(f"{_time.strftime('%H:%M:%S')}  " + ", ".join(figures), highlight=False)
            _time.sleep(min(5, max(0.5, end - _time.monotonic())))


METRICS_PAGE_HEAD = """# Metrics contract

Generated by `cutover metrics contract --out runbooks/reference/metrics.md` from the plan's `metrics:`
section; a test fails when this page is stale. The gateway exports these series; every rule and
dashboard queries them. A service with other names sets them in the plan.

"""


def main() -> None:
    try:
        app()
    except CutoverError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
