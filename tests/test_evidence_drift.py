"""`cutover evidence drift`: the gateway's drift gate as gate evidence, from its admin API or from
Prometheus, against a real gateway (and a real Prometheus scraping it) on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cutover.judge.driftgate import drift_evidence, from_prometheus, from_status

from .gatewayproc import GatewayProcess, project_copy
from .promstack import free_port, prometheus

MIN_SAMPLES = 10


def cutover(*args: str, token: str | None = "test-token") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CUTOVER_ADMIN_TOKEN"}
    if token is not None:
        env["CUTOVER_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "cutover.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def shadow_gateway(tmp_path: Path) -> GatewayProcess:
    """A shadow gateway whose every recall is a drift sample, and whose gate needs MIN_SAMPLES of them;
    ten records written and mirrored, so the stores are at parity."""
    project = project_copy(tmp_path, analysis={"shadow_sample_rate": 1.0, "drift_gate_min_samples": MIN_SAMPLES})
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(project, data, "shadow").start()
    c = g.client()
    for i in range(10):
        assert c.post("/v1/memories", json={"id": f"r{i}", "namespace": "n", "text": f"fact kw{i}"}).status_code == 200
    g.wait_drained()
    return g


def recalls(g: GatewayProcess, n: int) -> None:
    c = g.client()
    for i in range(n):
        assert c.post("/v1/recall", json={"namespace": "n", "query": f"kw{i % 10}"}).status_code == 200


def wait_samples(g: GatewayProcess, n: int) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end and g.status()["drift"]["samples"] < n:
        time.sleep(0.1)
    assert g.status()["drift"]["samples"] >= n


def gate(project: Path, evidence: Path) -> subprocess.CompletedProcess[str]:
    return cutover(
        "gate", "--phase", "canary", "--evidence", str(evidence), "--stack", "staging",
        "--file", str(project / "rollout.yaml"),
    )  # fmt: skip


def evidence_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("shadow/drift-*.json"))


def test_too_few_samples_write_hold_then_enough_write_promote_and_open_the_gate(tmp_path):
    g = shadow_gateway(tmp_path)
    try:
        project, evidence = g.project, g.project / "evidence" / "staging"  # the stack's evidencePath
        evidence.mkdir(parents=True)
        r = gate(project, evidence)
        assert r.returncode == 1 and "CLOSED" in r.stdout and "no drift evidence from phase 'shadow'" in r.stderr
        admin = f"http://127.0.0.1:{g.admin_port}"
        args = ("evidence", "drift", "--admin", admin, "--stack", "staging", "--project-dir", str(project))

        recalls(g, 3)
        wait_samples(g, 3)
        r = cutover(*args)
        assert r.returncode == 1, r.stderr
        assert "not enough drift samples: 3 of 10" in r.stderr and "HOLD: wrote" in r.stderr
        (held,) = evidence_files(evidence)
        ev = json.loads(held.read_text())
        assert (ev["kind"], ev["phase"], ev["stack"], ev["verdict"]) == ("drift", "shadow", "staging", "HOLD")
        assert ev["reasons"][0] == "not enough drift samples: 3 of 10" and ev["samples"] == {"treatment": 3}
        assert ev["plan_digest"].startswith("sha256:") and ev["details"]["source"] == "admin"
        r = gate(project, evidence)
        said = " ".join(r.stderr.split())
        assert r.returncode == 1 and "CLOSED" in r.stdout and "drift from 'shadow': HOLD" in said
        assert "not enough drift samples: 3 of 10" in said

        # a wrong token: exit 2, one line, nothing written
        r = cutover(*args, token="wrong-token-wrong-token-wrong-token")
        assert r.returncode == 2 and "refused the token (401)" in r.stderr and "Traceback" not in r.stderr
        assert evidence_files(evidence) == [held]

        # --wait polls while the traffic brings the samples in
        recalls(g, MIN_SAMPLES)
        r = cutover(*args, "--wait", "30")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "PROMOTE: wrote" in r.stdout
        promoted = [p for p in evidence_files(evidence) if p != held]
        assert len(promoted) == 1 and str(promoted[0]) in r.stdout
        ev = json.loads(promoted[0].read_text())
        assert ev["verdict"] == "PROMOTE" and ev["phase"] == "shadow" and ev["samples"]["treatment"] >= MIN_SAMPLES
        assert ev["details"]["drift"]["mean"] == 0.0 and "upper 95% bound of mean drift" in ev["reasons"][0]
        r = gate(project, evidence)
        assert r.returncode == 0 and "gate into 'canary': OPEN" in r.stdout, r.stdout + r.stderr
    finally:
        g.stop()


def test_prometheus_source_reads_the_gateways_drift_metrics(tmp_path):
    g = shadow_gateway(tmp_path)
    try:
        out = tmp_path / "evidence"
        with prometheus(tmp_path, [f"127.0.0.1:{g.port}"]) as prom:
            end = time.monotonic() + 30
            while time.monotonic() < end and not prom.query("cutover_drift_gate_ready")["data"]["result"]:
                time.sleep(0.2)
            args = ("evidence", "drift", "--prometheus", prom.url, "--out", str(out), "--project-dir", str(g.project))
            r = cutover(*args, token=None)  # Prometheus needs no admin token
            assert r.returncode == 1, r.stdout + r.stderr
            assert "not enough drift samples: 0 of 10" in r.stderr
            (held,) = evidence_files(out)
            assert json.loads(held.read_text())["verdict"] == "HOLD"

            recalls(g, MIN_SAMPLES + 2)
            wait_samples(g, MIN_SAMPLES + 2)
            r = cutover(*args, "--wait", "30", token=None)
            assert r.returncode == 0, r.stdout + r.stderr
            (promoted,) = [p for p in evidence_files(out) if p != held]
            ev = json.loads(promoted.read_text())
            assert ev["verdict"] == "PROMOTE" and ev["phase"] == "shadow"  # the phase-info gauge's phase
            assert ev["samples"]["treatment"] >= MIN_SAMPLES and ev["details"]["mean"] == 0.0
            assert ev["details"]["ready_gauge"] == 1.0
            assert "cutover_drift_gate_ready" in ev["details"]["queries"]["ready"]
            r = gate(g.project, out)
            assert r.returncode == 0 and "OPEN" in r.stdout
    finally:
        g.stop()


def test_an_unreachable_source_is_exit_2_and_writes_nothing(tmp_path):
    project = project_copy(tmp_path)
    out = tmp_path / "evidence"
    nobody = f"http://127.0.0.1:{free_port()}"
    for source in (("--admin", nobody), ("--prometheus", nobody)):
        r = cutover("evidence", "drift", *source, "--phase", "shadow", "--out", str(out), "--project-dir", str(project))
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("error: cannot ") and nobody in r.stderr.splitlines()[0]
    assert not out.exists()


# The domain step on plain data: what the gateway's status or Prometheus's figures make of a finding.


def status(ready: bool, samples: int, mean: float | None, upper: float | None, reason: str) -> dict:
    return {
        "phase": "shadow",
        "stack": "staging",
        "drift": {"samples": samples, "mean": mean, "upper_bound": upper, "threshold": 0.05},
        "cutover_ready": {"ready": ready, "reason": reason},
    }


def test_drift_above_the_threshold_is_hold_with_the_figure_and_the_threshold(plan):
    reading = from_status(
        status(False, 40, 0.29, 0.31, "upper 95% bound of mean drift 0.310 >= 0.05 over 40 samples"), plan, "u"
    )
    ev = drift_evidence(reading, plan, "staging", "shadow")
    assert ev.verdict == "HOLD" and ev.reasons[0].startswith("drift above the threshold:")
    assert "0.310 >= 0.05" in ev.reasons[0] and "40 samples" in ev.reasons[0]
    assert [(c.name, c.status) for c in ev.checks] == [("drift_samples", "pass"), ("parity_drift", "fail")]


def test_a_ready_gateway_short_of_the_plans_minimum_is_hold(plan):
    """A gateway run with a smaller minimum than the plan the evidence names does not pass it."""
    need = plan.effective("shadow").analysis.drift_gate_min_samples
    reading = from_status(status(True, need - 1, 0.0, 0.0, "ready"), plan, "u")
    ev = drift_evidence(reading, plan, "staging", "shadow")
    assert ev.verdict == "HOLD" and ev.reasons[0] == f"not enough drift samples: {need - 1} of {need}"
    ready = drift_evidence(from_status(status(True, need, 0.0, 0.0, "ready"), plan, "u"), plan, "staging", "shadow")
    assert ready.verdict == "PROMOTE" and ready.reasons == ["ready"]


def test_prometheus_figures_not_ready_on_enough_samples_say_the_mean(plan):
    need = plan.effective("shadow").analysis.drift_gate_min_samples
    reading = from_prometheus({"ready": 0.0, "samples": float(need * 2), "sum": need * 0.4}, plan, "u", None, "shadow")
    assert not reading.passed and reading.why_not().startswith("drift above the threshold: mean parity drift 0.200")
    calm = from_prometheus({"ready": 0.0, "samples": float(need * 2), "sum": 0.0}, plan, "u", None, "shadow")
    assert "window may be newer" in calm.why_not()  # e.g. after a drift window restart
