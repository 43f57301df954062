"""The one-command rehearsal: the campaign on one machine, on loopback, with the real components.

Render the staging stack; promtool check and test; start Prometheus, Alertmanager, the gateway
(SQLite stores) and the rollback controller; seed a legacy corpus, migrate it and reconcile; shadow
with drift samples and the drift gate; canary with Locust, the judge and the gate; a ramp phase
with a chaos drill (latency, then errors injected into MemoryOS) in which the alert fires in
Prometheus, Alertmanager calls the controller, the flags roll back, clients keep getting answers
through fallback, and reconciliation repairs the window; then on to full. Time is compressed: the
rules rendered for the rehearsal have their windows and `for:` durations divided by `scale`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from . import reconcile as rc
from .alerts import render_rules
from .controller import Controller, FlagFile, FlagState, apply_state, controller_app, render_state
from .evidence import check_gate, load_evidence, new_evidence
from .migration import Options, migrate
from .policy import load_policy
from .records import Record
from .render import load_project, render, write_rendering
from .ruletests import build_rule_tests
from .stores import LegacyStore, MemoryOSStore


@dataclass
class Check:
    step: str
    name: str
    ok: bool
    detail: str = ""
    figures: dict = field(default_factory=dict)


class Rehearsal:
    def __init__(self, project: Path, out: Path, scale: float = 30.0, say=print):
        self.project, self.out, self.scale, self.say = project, out, scale, say
        self.plan, self.cfg = load_project(project, "staging")
        self.checks: list[Check] = []
        self.procs: list[subprocess.Popen] = []
        self.started = time.monotonic()

    # -- bookkeeping ------------------------------------------------------------------------------
    def check(self, step: str, name: str, ok: bool, detail: str = "", **figures) -> bool:
        self.checks.append(Check(step, name, bool(ok), detail, figures))
        self.say(f"  [{'ok' if ok else 'FAIL'}] {step}: {name}" + (f" — {detail}" if detail else ""))
        return bool(ok)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- processes --------------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
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
            return s.getsockname()[1]

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
        if getattr(self, "ctrl_server", None):
            self.ctrl_server.should_exit = True

    # -- steps ------------------------------------------------------------------------------------
    def step_render(self) -> None:
        self.say("render and promtool")
        distinct = {}
        for phase in self.plan.phase_names:
            r = render(self.plan, "staging", self.cfg, phase)
            write_rendering(r, self.out / "render" / phase)
            distinct.setdefault(json.dumps(sorted(g["name"] + str(len(g["rules"])) for g in r.rules["groups"])), phase)
        promtool = shutil.which("promtool")
        checked = subprocess.run([promtool, "check", "rules", *[str(self.out / "render" / p / "rules.yml") for p in self.plan.phase_names]],
                                 capture_output=True, text=True)
        self.check("render", f"promtool check rules, {len(self.plan.phase_names)} phases", checked.returncode == 0,
                   checked.stderr.strip()[-300:])

        def test(phase: str) -> subprocess.CompletedProcess:
            return subprocess.run([promtool, "test", "rules", "rules.test.yml"], cwd=self.out / "render" / phase,
                                  capture_output=True, text=True)

        with ThreadPoolExecutor(2) as pool:
            for phase, res in zip(distinct.values(), pool.map(test, distinct.values())):
                self.check("render", f"promtool test rules ({phase})", res.returncode == 0, res.stderr.strip()[-300:])

    def start(self) -> None:
        self.say("start Prometheus, Alertmanager, the gateway and the controller")
        import uvicorn

        data = self.out / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.flags = FlagFile(self.out / "flags.json")
        self.flags.write(render_state(self.plan, FlagState(self.plan.phase_names[0]), "staging"))
        self.secret = "rehearsal-secret"
        self.ctrl = Controller(self.plan.model_copy(update={"abort_triggers": self.plan.abort_triggers.model_copy(
            update={"hold_down": self.plan.abort_triggers.hold_down / self.scale})}), "staging", self.flags, self.secret,
            self.out / "rollbacks.jsonl")
        ctrl_port = self.free_port()
        self.ctrl_server = uvicorn.Server(uvicorn.Config(controller_app(self.ctrl), host="127.0.0.1", port=ctrl_port, log_level="warning"))
        threading.Thread(target=self.ctrl_server.run, daemon=True).start()
        self.ctrl_url = f"http://127.0.0.1:{ctrl_port}"
        self.wait_http(f"{self.ctrl_url}/status")
        # the gateway
        self.gw_port, self.admin_port = self.free_port(), self.free_port()
        self.spawn("gateway", [sys.executable, "-m", "cutover.cli", "serve", "--stack", "staging", "--port", str(self.gw_port),
                               "--admin-port", str(self.admin_port), "--data-dir", str(data), "--flags-file", str(self.flags.path),
                               "--flag-poll-ms", "200", "--project-dir", str(self.project)],
                   env={"CUTOVER_ADMIN_TOKEN": "rehearsal-token"})
        self.gw = f"http://127.0.0.1:{self.gw_port}"
        self.wait_http(f"{self.gw}/healthz")
        self.admin = httpx.Client(base_url=f"http://127.0.0.1:{self.admin_port}", headers={"Authorization": "Bearer rehearsal-token"})
        # Alertmanager -> controller
        am_port, am_cluster = self.free_port(), self.free_port()
        am_cfg = {"route": {"receiver": "controller", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
                            "repeat_interval": "1m"},
                  "receivers": [{"name": "controller", "webhook_configs": [{
                      "url": f"{self.ctrl_url}/alertmanager", "send_resolved": False,
                      "http_config": {"authorization": {"credentials": self.secret}}}]}]}
        (self.out / "alertmanager.yml").write_text(yaml.safe_dump(am_cfg))
        self.spawn("alertmanager", [shutil.which("prometheus-alertmanager"), f"--config.file={self.out / 'alertmanager.yml'}",
                                    f"--storage.path={self.out / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                                    f"--cluster.listen-address=127.0.0.1:{am_cluster}"])
        self.am = f"http://127.0.0.1:{am_port}"
        self.wait_http(f"{self.am}/-/ready")
        # Prometheus with the time-compressed rules of the current phase
        self.prom_port = self.free_port()
        self.rules_file = self.out / "rules-rehearsal.yml"
        self.write_rules(self.plan.phase_names[0])
        prom_cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(self.rules_file)],
                    "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                    "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{self.gw_port}"]}]}]}
        (self.out / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg))
        self.spawn("prometheus", [shutil.which("prometheus"), f"--config.file={self.out / 'prometheus.yml'}",
                                  f"--storage.tsdb.path={self.out / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.prom_port}",
                                  "--web.enable-lifecycle", "--log.level=warn"])
        self.prom = f"http://127.0.0.1:{self.prom_port}"
        self.wait_http(f"{self.prom}/-/ready")
        self.check("start", "Prometheus, Alertmanager, gateway and controller answer on loopback", True,
                   f"gateway {self.gw}, Prometheus {self.prom}, Alertmanager {self.am}, controller {self.ctrl_url}")

    def write_rules(self, phase: str) -> None:
        rules = render_rules(self.plan, phase, "staging", self.cfg.runbookBaseUrl, time_scale=self.scale)
        self.rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
        if hasattr(self, "prom"):
            httpx.post(f"{self.prom}/-/reload", timeout=10)

    def set_phase(self, phase: str) -> None:
        apply_state(self.flags, self.plan, FlagState(phase), "staging")
        self.write_rules(phase)
        time.sleep(0.6)  # one flag-file poll of the gateway
