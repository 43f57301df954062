"""The rehearsal's harness: its components on loopback, the `cutover` commands it runs, its checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from cutover.flags.backend import FlagFile
from cutover.flags.state import FlagState, render_state
from cutover.ops import prometheus
from cutover.plan.stacks import load_project
from cutover.render.alerts import render_rules
from cutover.render.workloads.controller import ControllerRoute


def _binary(name: str) -> str:
    """The path of a binary `cutover rehearse` checked for before the rehearsal started."""
    path = shutil.which(name)
    assert path is not None, f"{name} not found"
    return path


CHUNK_S = 10  # one Locust run of a judged phase; runs repeat until the judge has its samples
JUDGE_TIMEOUT_S = 150  # a judged phase that has not reached its minimum samples by then fails
SEED_RECORDS = 3000  # the legacy corpus: 20 namespaces, 300 keys, 10 records a key
REGRESSION_MS = 100  # added to every MemoryOS read in the canary's regression (below the fallback budget)
REHEARSAL_MIN_SAMPLES = 100  # per cohort and operation: the one judge setting the rehearsal lowers
DURATION_SCALE = 86_400.0  # the phases' minimum durations on the rehearsal's clock: a day is a second


@dataclass
class Check:
    step: str
    name: str
    ok: bool
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


class Harness:
    """The rehearsal's components on loopback (Prometheus, Alertmanager, the gateway, the controller),
    started and stopped, and the `cutover` commands run against them as an operator runs them."""

    def __init__(self, project: Path, out: Path, scale: float = 30.0, say: Callable[[str], object] = print):
        self.project, self.out, self.scale, self.say = project, out, scale, say
        self.plan, self.cfg = load_project(project, "staging")
        self.plan_path = self.cfg.project_path(project, self.cfg.planPath)
        self.checks: list[Check] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = time.monotonic()

    # -- bookkeeping ------------------------------------------------------------------------------

    def check(self, step: str, name: str, ok: bool, detail: str = "", **figures: Any) -> bool:
        self.checks.append(Check(step, name, bool(ok), detail, figures))
        self.say(f"  {'ok  ' if ok else 'FAIL'} {step}: {name}" + (f" — {detail}" if detail else ""))
        return bool(ok)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- processes --------------------------------------------------------------------------------

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        import os

        log = open(self.out / "logs" / f"{name}.log", "ab")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.procs.append(p)
        return p

    @staticmethod
    def free_port() -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    @staticmethod
    def wait_http(url: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                httpx.get(url, timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(url)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()

    # -- steps ------------------------------------------------------------------------------------

    def start(self) -> None:
        self.say("start Prometheus, Alertmanager, the gateway and the controller")
        data = self.out / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.flags = FlagFile(self.out / "flags.json")
        self.flags.write(render_state(self.plan, FlagState(self.plan.phase_names[0]), "staging"))
        # the rollback controller, as a cluster runs it: `cutover controller` (a process of its own)
        import secrets

        self.secret = secrets.token_hex(24)
        (self.out / "webhook-secret").write_text(self.secret)
        (self.out / "webhook-secret").chmod(0o600)
        self.hold_down = self.plan.abort_triggers.hold_down / self.scale
        ctrl_port = self.free_port()
        self.spawn(
            "controller",
            [
                sys.executable,
                "-m",
                "cutover",
                "controller",
                "--stack",
                "staging",
                "--flags-file",
                str(self.flags.path),
                "--secret-file",
                str(self.out / "webhook-secret"),
                "--port",
                str(ctrl_port),
                "--log",
                str(self.out / "rollbacks.jsonl"),
                "--hold-down",
                f"{self.hold_down:g}s",
                "--project-dir",
                str(self.project),
            ],
        )
        self.ctrl_url = f"http://127.0.0.1:{ctrl_port}"
        self.wait_http(f"{self.ctrl_url}/status")
        # the gateway
        self.gw_port, self.admin_port = self.free_port(), self.free_port()
        self.spawn(
            "gateway",
            [
                sys.executable,
                "-m",
                "cutover.cli",
                "serve",
                "--stack",
                "staging",
                "--port",
                str(self.gw_port),
                "--admin-port",
                str(self.admin_port),
                "--data-dir",
                str(data),
                "--flags-file",
                str(self.flags.path),
                "--flag-poll-ms",
                "200",
                "--project-dir",
                str(self.project),
            ],
            env={"CUTOVER_ADMIN_TOKEN": "rehearsal-token"},
        )
        self.gw = f"http://127.0.0.1:{self.gw_port}"
        self.wait_http(f"{self.gw}/healthz")
        self.admin = httpx.Client(
            base_url=f"http://127.0.0.1:{self.admin_port}", headers={"Authorization": "Bearer rehearsal-token"}
        )
        # Alertmanager -> controller
        am_port, am_cluster = self.free_port(), self.free_port()
        route = ControllerRoute("controller", f"{self.ctrl_url}/alertmanager", "1s", "1s", "1m")
        am_cfg = route.alertmanager_yml({"credentials": self.secret}, nested=False)
        (self.out / "alertmanager.yml").write_text(yaml.safe_dump(am_cfg))
        self.spawn(
            "alertmanager",
            [
                _binary("prometheus-alertmanager"),
                f"--config.file={self.out / 'alertmanager.yml'}",
                f"--storage.path={self.out / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                f"--cluster.listen-address=127.0.0.1:{am_cluster}",
            ],
        )
        self.am = f"http://127.0.0.1:{am_port}"
        self.wait_http(f"{self.am}/-/ready")
        # Prometheus with the time-compressed rules of the current phase
        self.prom_port = self.free_port()
        self.rules_file = self.out / "rules-rehearsal.yml"
        self.write_rules(self.plan.phase_names[0])
        prom_cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.rules_file)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{self.gw_port}"]}]}],
        }
        (self.out / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg))
        self.spawn(
            "prometheus",
            [
                _binary("prometheus"),
                f"--config.file={self.out / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.out / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
        )
        self.prom = f"http://127.0.0.1:{self.prom_port}"
        self.wait_http(f"{self.prom}/-/ready")
        self.check(
            "start",
            "Prometheus, Alertmanager, gateway and controller answer on loopback",
            True,
            f"gateway {self.gw}, Prometheus {self.prom}, Alertmanager {self.am}, controller {self.ctrl_url}",
        )

    def write_rules(self, phase: str) -> None:
        rules = render_rules(self.plan, phase, "staging", self.cfg.runbookBaseUrl, time_scale=self.scale)
        self.rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
        if hasattr(self, "prom"):
            httpx.post(f"{self.prom}/-/reload", timeout=10)

    def set_phase(self, phase: str) -> None:
        """`cutover flags --phase`, through the gate as an operator moves the flags."""
        r = self.cutover(
            "flags",
            "--flags-file",
            str(self.flags.path),
            "--phase",
            phase,
            "--stack",
            "staging",
            "--evidence",
            str(self.out / "evidence"),
            "--reason",
            "rehearsal",
            "--time-scale",
            str(DURATION_SCALE),
            "--project-dir",
            str(self.project),
        )
        if r.returncode != 0:
            raise RuntimeError(f"cutover flags --phase {phase} refused: {' '.join(r.stderr.split())[-300:]}")
        self.write_rules(phase)
        time.sleep(0.6)  # one flag-file poll of the gateway

    def cutover(
        self, *args: str, timeout: float = 300, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A `cutover` command, as an operator runs it (`env`: added to this process's environment)."""
        import os

        return subprocess.run(
            [sys.executable, "-m", "cutover", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.admin.get("/admin/status").json()
        return status

    def rollbacks(self) -> list[dict[str, Any]]:
        """The controller's rollbacks so far (its GET /status), oldest first."""
        rollbacks: list[dict[str, Any]] = httpx.get(f"{self.ctrl_url}/status", timeout=5).json()["rollbacks"]
        return rollbacks

    def firing_rollback_alerts(self) -> list[str]:
        """Names of the firing alerts that ask for a rollback (label action=rollback)."""
        return sorted({labels["alertname"] for labels in prometheus.firing_alerts(self.prom, action="rollback")})

    def wait_outbox(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.status()["outbox"]["depth"]:
            time.sleep(0.2)
