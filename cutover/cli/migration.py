"""`cutover migrate` and `cutover reconcile`: move the records, then prove parity."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from cutover.cli.common import err, out
from cutover.plan.errors import CutoverError

if TYPE_CHECKING:
    from cutover.migration.counts import Counts

commands = typer.Typer()


def _progress_reporter(total: int | None, unit: str) -> tuple[Callable[[Counts, int], None], Callable[[], None]]:
    """A rich progress bar with rate and ETA on a terminal; plain lines every 5 s otherwise."""
    import time as _time

    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("[bold]migrate"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>10} rec/s"),
            TimeRemainingColumn(),
            console=err,
        )
        task = bar.add_task("migrate", total=total, rate="")
        bar.start()
        started = _time.monotonic()

        def update_bar(counts: Counts, done: int) -> None:
            bar.update(task, completed=done, rate=f"{counts.read / max(_time.monotonic() - started, 1e-9):,.0f}")

        return update_bar, bar.stop
    state = {"last": 0.0, "started": _time.monotonic()}

    def update_lines(counts: Counts, done: int) -> None:
        now = _time.monotonic()
        if now - state["last"] >= 5:
            state["last"] = now
            pct = f" ({100 * done / total:.0f} % of {unit})" if total else ""
            rate = counts.read / max(now - state["started"], 1e-9)
            err.print(
                f"migrate: {counts.read:,} read, {counts.migrated:,} migrated, {counts.quarantined:,} quarantined, "
                f"{rate:,.0f} rec/s{pct}",
                highlight=False,
            )

    return update_lines, lambda: None


@commands.command("migrate")
def migrate_cmd(
    source: str = typer.Option(
        ..., "--from", help="jsonl:PATH (a jido_memory export) or sqlite:PATH (the legacy store)"
    ),
    target: str = typer.Option(..., "--to", help="sqlite:PATH (the MemoryOS store) or jsonl:PATH"),
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n", help="only these namespaces (repeatable; default all)"
    ),
    policy_file: Path | None = typer.Option(
        None, "--policy", help="classification policy YAML (default: the built-in one)"
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="i/n: this worker takes the namespaces whose hash mod n is i"
    ),
    batch: int = typer.Option(20000, "--batch", min=1, help="records per batch and checkpoint"),
    dry_run: bool = typer.Option(False, "--dry-run", help="write nothing; report what would happen"),
    on_error: str = typer.Option(
        "quarantine", "--on-error", help="quarantine (default) or halt on the first bad record"
    ),
    quarantine: Path | None = typer.Option(
        None, "--quarantine", help="quarantine file (default: TARGET.quarantine.jsonl)"
    ),
    restart: bool = typer.Option(False, "--restart", help="ignore a checkpoint and start from the beginning"),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="the time age rules count from: epoch ms or ISO 8601 (default: the run's start; "
        "a resumed run keeps its own), recorded in the checkpoint and each record's provenance",
    ),
    defer_index: bool = typer.Option(
        False,
        "--defer-index",
        help="bulk mode: build the text index once at the end "
        "(about 5x faster; text search misses new records until the run ends)",
    ),
    report: Path | None = typer.Option(None, "--report", help="write the JSON report here"),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="processes preparing records from a jsonl: "
        "source (default: one per core, at most 4); 1: all in this process",
    ),
) -> None:
    """Classify legacy records into tiers, backfill lifecycle and provenance metadata, and write them to MemoryOS.

    Safe on live data: batches, a durable checkpoint after each, resume after a crash (run the same
    command again), idempotent re-runs, --dry-run, --shard for parallel workers.
    """
    import os

    from cutover.migration.build import parse_as_of
    from cutover.migration.migrate import migrate
    from cutover.migration.options import Options, parse_shard, parse_uri
    from cutover.migration.tiering import load_policy

    os.umask(0o077)  # the target store, its WAL, the quarantine file and the report: owner only, from creation
    kind, path = parse_uri(source)
    total = path.stat().st_size if kind == "jsonl" and path.is_file() else None
    update, stop = _progress_reporter(total, "the source bytes" if total else "records")
    try:
        result = migrate(
            Options(
                source=source,
                target=target,
                policy=load_policy(policy_file),
                namespaces=namespace or None,
                shard=parse_shard(shard),
                batch=batch,
                dry_run=dry_run,
                on_error=on_error,
                quarantine=quarantine,
                restart=restart,
                defer_index=defer_index,
                as_of=parse_as_of(as_of),
                progress=update,
                workers=workers,
            )
        )
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
    table.add_row("as-of (age rules count from)", f"{result['as_of']}")
    table.add_row("resumed from checkpoint", "yes" if result["resumed"] else "no")
    out.print(table)
    if result["quarantined"] and not dry_run:
        out.print(f"quarantined records: {result['quarantine_file']}")
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result, indent=2) + "\n")


@commands.command("reconcile")
def reconcile_cmd(
    source: str = typer.Option(..., "--source", help="the source of truth: sqlite:PATH or jsonl:PATH"),
    target: str = typer.Option(..., "--target", help="the store to check: sqlite:PATH or jsonl:PATH"),
    namespace: list[str] = typer.Option([], "--namespace", "-n", help="only these namespaces (repeatable)"),
    policy_file: Path | None = typer.Option(None, "--policy", help="classification policy for records without a tier"),
    repair_: bool = typer.Option(
        False, "--repair", help="copy what is missing or stale from the source, then check again"
    ),
    delete_extra: bool = typer.Option(
        False, "--delete-extra", help="with --repair: delete target records the source lacks"
    ),
    since: int | None = typer.Option(None, "--since", help="only records observed at or after (epoch ms)"),
    until: int | None = typer.Option(None, "--until", help="only records observed at or before (epoch ms)"),
    no_tier: bool = typer.Option(False, "--ignore-tier", help="compare id, version and text only"),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="classify records without a tier at this time (epoch ms or ISO 8601) when their counterpart "
        "recorded none (default: the as-of the target's migration recorded, else now)",
    ),
    report_dir: Path | None = typer.Option(None, "--report", help="write reconcile.json and reconcile.md here"),
    after_rollback: Path | None = typer.Option(
        None,
        "--after-rollback",
        help="the controller's rollback log: reconcile the window around its latest rollback",
    ),
) -> None:
    """Compare counts, checksums and ids per namespace and tier; exit 1 when parity fails."""
    from cutover.migration import reconcile as rc
    from cutover.migration.build import parse_as_of
    from cutover.migration.tiering import load_policy

    at = parse_as_of(as_of)

    policy = load_policy(policy_file)
    window = (since or 0, until or 2**62) if (since or until) else None
    if after_rollback is not None:
        if not after_rollback.is_file():
            raise CutoverError(
                "no rollback log", file=str(after_rollback), fix="the controller writes it (rollbacks.jsonl)"
            )
        lines = [json.loads(x) for x in after_rollback.read_text().splitlines() if x.strip()]
        if not lines:
            raise CutoverError("the rollback log is empty", file=str(after_rollback))
        at = int(lines[-1]["at"] * 1000)
        window = (since or at - 3_600_000, until or 2**62)  # the hour before the rollback, up to now
    repaired = None
    if repair_:
        repaired = rc.repair(
            source, target, policy, namespace or None, window, delete_extra, compare_tier=not no_tier, as_of=at
        )
        report = repaired["after"]
    else:
        report = rc.compare(source, target, policy, namespace or None, window, compare_tier=not no_tier, as_of=at)
    if report_dir:
        j, m = rc.write_reports(report, report_dir, repaired)
        out.print(f"reports: {j}, {m}")
    if repaired:
        out.print(
            f"repair: {repaired['copied_missing']} copied, {repaired['replaced_stale']} stale replaced, "
            f"{repaired['deleted_extra']} extra deleted, {repaired['dead_letters_cleared']} dead letters cleared "
            f"(into a {repaired['target_kind']} store)"
        )
    t = report["totals"]
    out.print(
        f"parity: {'yes' if report['parity'] else 'NO'} ({report['records_scanned']:,} records, {report['namespaces']} "
        f"namespaces; missing in target {t['missing_in_target']}, missing in source {t['missing_in_source']}, "
        f"mismatched {t['mismatched']}; as-of {report['as_of']})"
    )
    q, sup = report["quarantined"], report["superseded"]
    if any(q.values()) or any(sup.values()):
        out.print(
            f"left out as migrate does: quarantined source {q['source']}, target {q['target']}; "
            f"older versions of duplicate ids source {sup['source']}, target {sup['target']}"
        )
    if not report["parity"]:
        raise typer.Exit(1)
