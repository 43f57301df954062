"""The real flagd daemon built by `make engines` (engines/modules/flagd: flagd/core's evaluator and
its file and Kubernetes sync providers), on free loopback ports. A missing engine fails the test
with the command that builds it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .kubecluster import find_engine
from .promstack import free_port, stop


class Flagd:
    """`flagd start --uri SOURCE`: SOURCE is `file:PATH` or `core.openfeature.dev/NAMESPACE/NAME`
    (then `kubeconfig` gives the API server, as a service account does in a pod)."""

    def __init__(self, source: str, log_dir: Path, kubeconfig: str | None = None):
        try:
            self.bin = find_engine("flagd")
        except FileNotFoundError as exc:
            pytest.fail(f"{exc}", pytrace=False)
        self.source, self.kubeconfig = source, kubeconfig
        self.port, self.ofrep_port, self.health_port = free_port(), free_port(), free_port()
        self.log_path = log_dir / f"flagd-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Flagd:
        env = {**os.environ, **({"KUBECONFIG": self.kubeconfig} if self.kubeconfig else {})}
        argv = [self.bin, "start", "--uri", self.source, "--port", str(self.port)]
        argv += ["--ofrep-port", str(self.ofrep_port), "--management-port", str(self.health_port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # ready once every source has synced
            if self.proc.poll() is not None:
                raise RuntimeError(f"flagd exited {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.health_port}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"flagd not ready after {timeout} s: {self.log()}")

    def evaluate(self, key: str, **context) -> dict:
        """One flag over OFREP, flagd's HTTP evaluation API."""
        r = httpx.post(f"http://127.0.0.1:{self.ofrep_port}/ofrep/v1/evaluate/flags/{key}", json={"context": context})
        return r.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        stop(self.proc)
