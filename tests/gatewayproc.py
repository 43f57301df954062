"""Run the real gateway (`cutover serve`) as a process on loopback for tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from .conftest import ROOT
from .promstack import free_port, stop, wait_http


def project_copy(tmp: Path, **plan_changes) -> Path:
    """The project's plan and stacks in tmp, with plan sections updated (e.g. analysis={...})."""
    proj = tmp / "project"
    proj.mkdir(exist_ok=True)
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml"):
        shutil.copy(ROOT / name, proj / name)
    plan = yaml.safe_load((ROOT / "rollout.yaml").read_text())
    for section, values in plan_changes.items():
        plan[section] = {**plan.get(section, {}), **values}
    (proj / "rollout.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return proj


class GatewayProcess:
    def __init__(self, project: Path, data: Path, phase: str | None, stack: str = "staging", flag_poll_ms: int = 200):
        """phase None: as the Deployment runs it (`--plan`, no `--phase`: the live flags name the phase)."""
        self.project, self.data, self.phase, self.stack, self.poll = project, data, phase, stack, flag_poll_ms
        self.port, self.admin_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, flags_file: Path | None = None, *extra: str) -> GatewayProcess:
        args = [
            sys.executable,
            "-m",
            "cutover.cli",
            "serve",
            "--stack",
            self.stack,
            *(["--phase", self.phase] if self.phase else ["--plan", str(self.project / "rollout.yaml")]),
            "--port",
            str(self.port),
            "--admin-port",
            str(self.admin_port),
            "--data-dir",
            str(self.data),
            "--flag-poll-ms",
            str(self.poll),
            "--project-dir",
            str(self.project),
        ]
        if flags_file:
            args += ["--flags-file", str(flags_file)]
        args += extra
        env = {**os.environ, "CUTOVER_ADMIN_TOKEN": "test-token"}
        self.log = open(self.data.parent / f"gateway-{self.port}.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_http(f"{self.url}/healthz", timeout=60)
        except TimeoutError:
            self.stop()
            raise
        return self

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop(self.proc)

    def client(self, agent: str = "agent-1", group: str | None = None) -> httpx.Client:
        headers = {"X-Agent-Id": agent} | ({"X-Group": group} if group else {})
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def admin(self, token: str | None = "test-token") -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.admin_port}", headers=headers, timeout=10)

    def faults(self, store: str, **kw) -> None:
        r = self.admin().post("/admin/faults", json={"store": store, **kw})
        r.raise_for_status()

    def status(self) -> dict:
        return self.admin().get("/admin/status").json()

    def wait_drained(self, timeout: float = 30) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.status()
            if not s["outbox"]["depth"]:
                return s
            time.sleep(0.1)
        raise TimeoutError(f"outbox not drained: {self.status()['outbox']}")


@contextlib.contextmanager
def gateway(tmp: Path, phase: str, project: Path | None = None, **kw):
    data = tmp / f"data-{phase}"
    data.mkdir(exist_ok=True)
    g = GatewayProcess(project or project_copy(tmp), data, phase, **kw).start()
    try:
        yield g
    finally:
        g.stop()
