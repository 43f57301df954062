"""`cutover analyze --prometheus`: a real Prometheus scrapes exporters that serve the gateway's own
metrics (`GatewayMetrics`, the contract's names, labels and buckets) filled from known
distributions, and the command judges each one's window."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from cutover.gateway.metrics import GatewayMetrics
from cutover.plan.model import load_plan

from .conftest import ROOT
from .promstack import free_port, prometheus

PHASE = "ramp-50"  # a 50 % split: equal cohorts are the configured share
N = 3000  # requests a cohort and operation
FEW = 200  # the exporter whose window holds too few


@dataclass
class Scenario:
    t_scale: float = 1.0  # treatment latency over control's
    c_err: float = 0.002
    t_err: float = 0.002
    n: int = N
    shadow_reads: int = 0


SCENARIOS = {
    "aa": Scenario(shadow_reads=200),
    "slower": Scenario(t_scale=1.3),
    "errors": Scenario(t_err=0.03),
    "few": Scenario(n=FEW),
}


class Exporter:
    """One gateway's metrics, served on loopback; series created at zero, so that Prometheus's first
    scrape sees them before any traffic and increase() counts all of it."""

    def __init__(self, plan, scenario: Scenario, seed: int):
        self.scenario, self.rng = scenario, np.random.default_rng(seed)
        self.registry = CollectorRegistry()
        self.m = GatewayMetrics(plan, self.registry)
        self.m.phase_info.labels(phase=PHASE, stack="staging").set(1)
        for cohort, path in (("control", "legacy"), ("treatment", "memoryos")):
            for op in ("recall", "remember"):
                self.m.duration.labels(op=op, path=path, cohort=cohort)
                for outcome in ("ok", "error"):
                    self.m.requests.labels(op=op, path=path, cohort=cohort, outcome=outcome)
        for measure in ("parity", "jaccard", "rbo"):
            self.m.drift.labels(measure=measure)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.target = f"127.0.0.1:{self.port}"

    def traffic(self) -> int:
        """The scenario's requests: lognormal latencies (recall median 40 ms, remember 15 ms)."""
        s, total = self.scenario, 0
        for cohort, path, scale, err in (
            ("control", "legacy", 1.0, s.c_err),
            ("treatment", "memoryos", s.t_scale, s.t_err),
        ):
            for op, median in (("recall", 0.040), ("remember", 0.015)):
                for x in self.rng.lognormal(math.log(median), 0.45, s.n) * scale:
                    outcome = "error" if self.rng.random() < err else "ok"
                    self.m.requests.labels(op=op, path=path, cohort=cohort, outcome=outcome).inc()
                    self.m.duration.labels(op=op, path=path, cohort=cohort).observe(float(x))
                total += s.n
        for _ in range(s.shadow_reads):
            self.m.drift.labels(measure="parity").observe(float(self.rng.uniform(0, 0.02)))
            self.m.drift.labels(measure="jaccard").observe(float(self.rng.uniform(0.2, 0.6)))
            self.m.drift.labels(measure="rbo").observe(float(self.rng.uniform(0.3, 0.7)))
        return total

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(prom, expr: str, want: float, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        res = prom.query(expr)["data"]["result"]
        if res and float(res[0]["value"][1]) == want:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{expr} never reached {want}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Prometheus scraping one exporter a scenario, each scenario's traffic scraped, and a plan file
    per scenario whose metrics selector picks that exporter (`instance`)."""
    work = tmp_path_factory.mktemp("binned")
    plan = load_plan(ROOT / "rollout.yaml")
    exporters = {name: Exporter(plan, s, seed) for seed, (name, s) in enumerate(SCENARIOS.items())}
    try:
        with prometheus(work, [e.target for e in exporters.values()]) as prom:
            for e in exporters.values():  # a scrape at zero first
                wait_for(prom, f'count(cutover_requests_total{{instance="{e.target}"}})', 8)
            for e in exporters.values():
                total = e.traffic()
                wait_for(prom, f'sum(cutover_requests_total{{instance="{e.target}"}})', total)
            time.sleep(3)  # a few scrapes at the final counts: increase() sees the traffic inside the window
            plans = {}
            for name, e in exporters.items():
                path = work / f"plan-{name}.yaml"
                text = (ROOT / "rollout.yaml").read_text()
                path.write_text(text + f"\nmetrics:\n  selector: 'instance=\"{e.target}\"'\n")
                plans[name] = path
            yield prom, plans, work
    finally:
        for e in exporters.values():
            e.close()


def analyze(stack, scenario: str, *extra: str, phase: str = PHASE) -> tuple[subprocess.CompletedProcess, Path]:
    prom, plans, work = stack
    out = work / f"out-{scenario}-{phase}"
    args = ["analyze", "--prometheus", prom.url, "--window", "5m", "--phase", phase, "--out", str(out)]
    r = subprocess.run(
        [sys.executable, "-m", "cutover.cli", *args, "--file", str(plans[scenario]), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r, out


def verdict(out: Path) -> dict:
    return json.loads((out / "verdict.json").read_text())


def test_aa_promotes_and_states_its_source(stack):
    r, out = analyze(stack, "aa")
    assert r.returncode == 0, r.stdout + r.stderr
    ev = verdict(out)
    assert ev["verdict"] == "PROMOTE" and ev["kind"] == "verdict" and ev["phase"] == PHASE
    assert ev["details"]["source"].startswith(f"Prometheus {stack[0].url}")
    assert "Data: Prometheus" in (out / "report.md").read_text()
    assert ev["samples"]["control"] >= 2 * N  # increase() extrapolates a little: never fewer
    metrics = {m["name"]: m for m in ev["details"]["metrics"]}
    assert metrics["recall_overlap"]["classification"] == "Pass"  # from the shadow reads
    assert metrics["recall_overlap"]["figures"]["shadow_reads"] >= 200
    assert 0.9 < metrics["recall_latency"]["figures"]["median_ratio"] < 1.1


def test_a_30_percent_slower_treatment_is_not_promoted(stack):
    r, out = analyze(stack, "slower")
    ev = verdict(out)
    # +30 % is past the plan's critical +20 %, but within a bucket width (25-50 ms, 50-100 ms) no bound
    # is certain of it: HOLD, with the reason
    assert r.returncode == 1 and ev["verdict"] == "HOLD", r.stdout
    assert any("recall_latency: treatment slower than allowed" in x for x in ev["reasons"])
    metrics = {m["name"]: m for m in ev["details"]["metrics"]}
    assert 1.2 < metrics["recall_latency"]["figures"]["median_ratio"] < 1.4
    assert metrics["recall_overlap"]["classification"] == "NotApplicable"  # no shadow reads: never blocks
    assert "recall_overlap" not in {c["name"] for c in ev["checks"]}


def test_raised_errors_roll_back(stack):
    r, out = analyze(stack, "errors")
    ev = verdict(out)
    assert r.returncode == 3 and ev["verdict"] == "ROLLBACK", r.stdout
    assert any(x.startswith("recall_errors: treatment error rate") for x in ev["reasons"])


def test_a_window_with_too_few_requests_holds_saying_why(stack):
    r, out = analyze(stack, "few")
    assert r.returncode == 1 and verdict(out)["verdict"] == "HOLD"
    assert "1000 needed per cohort" in r.stdout and "successful requests in the window" in r.stdout


def test_a_window_of_another_phase_is_refused(stack):
    r, out = analyze(stack, "aa", phase="ramp-25")
    assert r.returncode == 2 and "the window holds phases ramp-50" in r.stderr
    assert not (out / "verdict.json").exists()


def test_samples_and_prometheus_at_once_are_refused(tmp_path):
    samples = tmp_path / "s.jsonl"
    samples.write_text("")
    args = ["analyze", str(samples), "--prometheus", "http://127.0.0.1:9", "--phase", PHASE, "--out", str(tmp_path)]
    r = subprocess.run([sys.executable, "-m", "cutover.cli", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "both sample files and --prometheus" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "cutover.cli", "analyze", "--phase", PHASE, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "no sample files" in r.stderr
