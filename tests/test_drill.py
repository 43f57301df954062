"""`cutover drill`: the chaos drill as a command, run against a running stack on loopback (real
Prometheus, Alertmanager, gateway and controller, started by the rehearsal's harness): the alert
fires, the controller rolls back, clients keep answers, acknowledged writes are readable from
legacy, and the real `cutover reconcile --after-rollback --repair` reaches parity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cutover.flags.backend import apply_state
from cutover.flags.state import FlagState, state_of
from cutover.ops.drill import parse_faults
from cutover.ops.rehearsal import Rehearsal
from cutover.plan.errors import CutoverError

from .conftest import ROOT
from .gatewayproc import GatewayProcess, project_copy
from .promstack import free_port

ROLLBACK_ALERTS = ("CutoverFallbackRateHigh", "CutoverOutboxDepthHigh", "CutoverTreatmentP99High")


def drill(r: Rehearsal, out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[Path]]:
    """`cutover drill` against the harness's stack: the process and the evidence files it wrote."""
    before = set(out.rglob("drill-*.json"))
    cmd = [
        sys.executable, "-m", "cutover", "drill", "--gateway", r.gw,
        "--admin", f"http://127.0.0.1:{r.admin_port}", "--prometheus", r.prom, "--controller", r.ctrl_url,
        "--legacy", f"sqlite:{r.out / 'data' / 'legacy.db'}",
        "--memoryos", f"sqlite:{r.out / 'data' / 'memoryos.db'}",
        "--rollback-log", str(r.out / "rollbacks.jsonl"), "--stack", "staging", "--out", str(out),
        "--project-dir", str(ROOT), *args,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CUTOVER_ADMIN_TOKEN": "rehearsal-token"},
    )
    return proc, sorted(set(out.rglob("drill-*.json")) - before)


def roll_forward(r: Rehearsal, phase: str) -> None:
    """The flags back in `phase` once the controller's hold-down is over (else it ignores the next alert)."""
    history = r.rollbacks()
    if history:
        time.sleep(max(0.0, r.hold_down - (time.time() - history[-1]["at"])) + 0.5)
    apply_state(r.flags, r.plan, FlagState(phase), "staging")
    r.write_rules(phase)
    time.sleep(0.6)  # one flag-file poll of the gateway


@pytest.mark.slow  # three drills on one stack, a hold-down between two of them: about 90 s
def test_drill_command_against_a_running_stack(tmp_path):
    r = Rehearsal(ROOT, tmp_path, scale=30, say=lambda m: None)
    for d in ("logs", "evidence"):
        (tmp_path / d).mkdir()
    out = tmp_path / "drill-evidence"
    try:
        r.start()
        r.seed_migrate_reconcile(n=600)
        roll_forward(r, "ramp-50")
        # a fault too small for any abort trigger: no alert within --timeout, HOLD (exit 1)
        small, small_files = drill(r, out, "--fault", "latency=1", "--timeout", "4")
        # errors in MemoryOS at ramp-50: PROMOTE
        ramp, ramp_files = drill(r, out, "--fault", "errors", "--timeout", "90")
        killed = state_of(json.loads((tmp_path / "flags.json").read_text())).kill_switch
        # at full (MemoryOS primary, mirrored back to legacy), slow MemoryOS: every acknowledged write
        # must be readable from legacy after the kill switch
        roll_forward(r, "full")
        full, full_files = drill(r, out, "--fault", "latency", "--timeout", "90")
    finally:
        r.stop()

    assert small.returncode == 1, small.stdout + small.stderr
    hold = json.loads(small_files[0].read_text())
    assert hold["verdict"] == "HOLD" and hold["phase"] == "ramp-50"
    assert any(x.startswith("rollback alert fired: none") for x in hold["reasons"])
    assert hold["details"]["reconcile"] is None and hold["details"]["drills"][0]["rollback"] is None

    assert ramp.returncode == 0, ramp.stdout + ramp.stderr
    assert killed
    assert [p.parent.name for p in ramp_files] == ["ramp-50"] and ramp_files[0].name.startswith("drill-")
    ev = json.loads(ramp_files[0].read_text())
    res = ev["details"]["drills"][0]
    assert ev["kind"] == "drill" and ev["verdict"] == "PROMOTE" and ev["stack"] == "staging"
    assert ev["plan_digest"] == r.plan.digest()
    assert res["alert"] in ROLLBACK_ALERTS and res["rollback"]["trigger"] in ROLLBACK_ALERTS
    assert res["rollback"]["level"] == "immediate" and res["rollback"]["labels"]["action"] == "rollback"
    assert res["time_to_alert_s"] is not None and res["time_to_flag_flip_s"] is not None
    assert res["time_to_recovery_s"] is not None and res["recovered_on"] == "legacy"
    assert res["client_error_rate"] <= r.plan.effective("ramp-50").monitoring.fallback_rate_max
    assert res["fallback_answers"] > 0
    recon = ev["details"]["reconcile"]
    assert recon["command"].startswith("cutover reconcile --source sqlite:") and "--after-rollback" in recon["command"]
    assert recon["exit_code"] == 0 and recon["parity"] is True and recon["records_scanned"] > 0
    assert all(c["status"] == "pass" for c in ev["checks"])

    assert full.returncode == 0, full.stdout + full.stderr
    fev = json.loads(full_files[0].read_text())
    assert fev["phase"] == "full" and fev["verdict"] == "PROMOTE"
    writes = fev["details"]["writes"]
    assert writes["acknowledged_memoryos_primary"] > 0
    assert writes["readable_from_legacy"] == writes["acknowledged"] and writes["missing"] == 0
    assert fev["details"]["reconcile"]["parity"] is True
    print("drill figures:", json.dumps({"ramp-50": res, "full": fev["details"]["drills"][0], "writes": writes}))


def test_drill_with_no_controller_exits_2_and_writes_nothing(tmp_path):
    project = project_copy(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(project, data, "ramp-50").start()
    out = tmp_path / "evidence"
    dead = f"http://127.0.0.1:{free_port()}"
    cmd = [
        sys.executable, "-m", "cutover", "drill", "--gateway", g.url,
        "--admin", f"http://127.0.0.1:{g.admin_port}", "--prometheus", dead, "--controller", dead,
        "--legacy", f"sqlite:{data / 'legacy.db'}", "--memoryos", f"sqlite:{data / 'memoryos.db'}",
        "--rollback-log", str(tmp_path / "rollbacks.jsonl"), "--out", str(out), "--project-dir", str(project),
    ]  # fmt: skip
    try:
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "CUTOVER_ADMIN_TOKEN": "test-token"},
        )
        faults = g.status()["faults"]
    finally:
        g.stop()
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the controller at " + dead), r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    assert faults["memoryos"] == {"latency_ms": 0, "error_rate": 0, "outage": False}  # nothing was injected


def test_fault_options():
    assert parse_faults([]) == {"error_rate": 1.0}
    assert parse_faults(["latency", "errors=0.5"]) == {"latency_ms": 800.0, "error_rate": 0.5}
    for bad in ("latency=fast", "errors=2", "outage", "latency=0"):
        with pytest.raises(CutoverError):
            parse_faults([bad])
