"""`cutover evidence`: gate evidence an operator produces from the running system (`drift`: the
gateway's drift gate, read from its admin API or from Prometheus)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cutover.cli import common
from cutover.cli.common import PlanFile, ProjectDir, err, out
from cutover.plan.errors import CutoverError
from cutover.plan.project import find_project

if TYPE_CHECKING:
    from cutover.judge.driftgate import DriftReading

commands = typer.Typer(help="Produce gate evidence from the running system.", no_args_is_help=True)

DEFAULT_ADMIN = "http://127.0.0.1:8081"  # `cutover serve`'s admin listener: --port 8080 + 1
POLL_S = 2.0


def admin_token(token_file: Path | None) -> str:
    """The gateway's admin token: --token-file, else $CUTOVER_ADMIN_TOKEN."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CutoverError(f"cannot read the token file: {exc.strerror}", file=str(token_file)) from None
        where = str(token_file)
    else:
        token, where = os.environ.get("CUTOVER_ADMIN_TOKEN", "").strip(), "$CUTOVER_ADMIN_TOKEN"
    if not token:
        raise CutoverError(
            f"no admin token: {where} is empty or unset",
            fix="--token-file FILE (the gateway writes DATA_DIR/admin-token) or $CUTOVER_ADMIN_TOKEN",
        )
    return token


def evidence_dir(out_dir: Path | None, project_dir: Path | None, stack: str) -> Path:
    """--out, else the stack's evidencePath (relative to the project directory)."""
    if out_dir is not None:
        return out_dir
    root = find_project(project_dir)
    _plan, cfg = common.project(root, stack)
    if not cfg.evidencePath:
        raise CutoverError(
            f"stack {stack!r} sets no evidencePath",
            file=f"Pulumi.{stack}.yaml",
            fix="pass --out DIR, or set memoryos-rollout:evidencePath (e.g. evidence/staging)",
        )
    path = cfg.project_path(root, cfg.evidencePath)
    if path.suffix == ".json" or path.is_file():
        raise CutoverError(
            f"the stack's evidencePath {cfg.evidencePath!r} is a file, not a directory",
            fix="pass --out DIR: the drift evidence goes to DIR/<phase>/",
        )
    return path


def write_new(folder: Path, stem: str, text: str) -> Path:
    """folder/stem-<UTC timestamp>.json, never over an existing file."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path, n = folder / f"{stem}-{stamp}.json", 1
    while True:
        try:
            with open(path, "x", encoding="utf-8") as f:
                f.write(text)
            return path
        except FileExistsError:
            n += 1
            path = folder / f"{stem}-{stamp}-{n}.json"


@commands.command("drift")
def drift_cmd(
    admin: str = typer.Option(
        DEFAULT_ADMIN, "--admin", help="the gateway's admin API (cutover serve --admin-port), read with the admin token"
    ),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="file holding the admin token (default: $CUTOVER_ADMIN_TOKEN)"
    ),
    prometheus: str | None = typer.Option(
        None,
        "--prometheus",
        help="read the drift gate from this Prometheus instead of the admin API: the lowest drift-ready gauge "
        "over the gateways (cutover_drift_gate_ready), the parity drift histogram's count and sum "
        '(cutover_drift_distance_count and _sum{measure="parity"}, summed) and the phase-info gauge of the stack '
        "(cutover_phase_info); names as the plan's metrics section sets them",
    ),
    selector: list[str] = typer.Option(
        [], "--selector", help='with --prometheus: extra label matchers (repeatable), e.g. namespace="memory-staging"'
    ),
    stack: str = typer.Option("staging", "--stack", "-s", help="stack the evidence applies to (and its plan)"),
    phase: str | None = typer.Option(
        None, "--phase", "-p", help="phase the drift was measured in (default: the phase the gateway reports)"
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="evidence directory (default: the stack's evidencePath); writes OUT/<phase>/"
    ),
    wait: float = typer.Option(
        0, "--wait", min=0, help="seconds to wait for the plan's minimum drift samples, polling (default: read once)"
    ),
    file: Path | None = PlanFile,
    project_dir: Path | None = ProjectDir,
) -> None:
    """Write the gateway's drift gate as gate evidence: OUT/<phase>/drift-<UTC timestamp>.json.

    PROMOTE (exit 0) when the gateway's drift gate is ready on at least the plan's
    analysis.drift_gate_min_samples samples. Otherwise a HOLD file (so `cutover gate` shows why) and
    exit 1: too few samples, or drift above monitoring.drift_max. A gateway or Prometheus that does
    not answer, or refuses the token: exit 2, nothing written.
    """
    from cutover.judge.driftgate import drift_evidence
    from cutover.plan.model import load_plan

    plan = load_plan(file) if file is not None else common.project(project_dir, stack)[0]
    if phase is not None:
        plan.index(phase)  # an unknown phase is refused before anything is read
    folder = evidence_dir(out_dir, project_dir, stack)
    token = None if prometheus else admin_token(token_file)

    def read() -> DriftReading:
        from cutover.ops import driftgate

        if prometheus:
            return driftgate.read_prometheus(prometheus, plan, stack, phase, selector)
        assert token is not None
        return driftgate.read_admin(admin, token, plan, phase)

    reading = wait_for_samples(read, wait)
    if reading.stack is not None and reading.stack != stack:
        raise CutoverError(
            f"the gateway at {reading.url} serves stack {reading.stack!r}, not {stack!r}",
            fix=f"--stack {reading.stack}, or --admin the gateway of stack {stack!r}",
        )
    measured = phase or reading.phase
    if measured is None:
        raise CutoverError(
            f"{reading.url} does not say which phase the gateway serves", fix="name it: --phase PHASE (e.g. shadow)"
        )
    if phase is not None and reading.phase not in (None, phase):
        note = f"note: the gateway serves phase {reading.phase!r}; the evidence says {phase!r}"
        err.print(note, highlight=False, soft_wrap=True)
    ev = drift_evidence(reading, plan, stack, measured)
    path = write_new(folder / measured, "drift", ev.to_json())
    if ev.passed:
        out.print(f"drift gate ready: {reading.gate_reason}", highlight=False, soft_wrap=True)
        out.print(f"PROMOTE: wrote {path}", highlight=False, soft_wrap=True)
        return
    err.print(f"drift gate not ready: {reading.why_not()}", highlight=False, soft_wrap=True)
    err.print(f"HOLD: wrote {path}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def wait_for_samples(read: Callable[[], DriftReading], wait: float) -> DriftReading:
    """Read the gate; with `wait`, again every POLL_S until it has its minimum samples or the time is up."""
    deadline = time.monotonic() + wait
    reading = read()
    while reading.samples < reading.min_samples and time.monotonic() + POLL_S <= deadline:
        progress = f"drift samples: {reading.samples} of {reading.min_samples}, waiting"
        out.print(progress, highlight=False, soft_wrap=True)
        time.sleep(POLL_S)
        reading = read()
    return reading
