"""Start real Prometheus (Debian package) on loopback for tests, and query its HTTP API."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(binary: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise RuntimeError(f"{binary} not found: install the Debian package (see .ci/run)")
    return path


def wait_http(url: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen | None, grace_s: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still running after `grace_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def process(args: list[str], log: Path):
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            stop(proc)


@contextlib.contextmanager
def exporter(workdir: Path, plan_path: Path):
    port = free_port()
    script = Path(__file__).with_name("contract_exporter.py")
    with process([sys.executable, str(script), str(port), str(plan_path)], workdir / "exporter.log"):
        wait_http(f"http://127.0.0.1:{port}/metrics")
        yield f"127.0.0.1:{port}"


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def api(self, path: str, **params: str) -> dict:
        q = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{q}", timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error as JSON
            return json.loads(exc.read())

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)


@contextlib.contextmanager
def prometheus(workdir: Path, targets: list[str], rule_files: list[Path] = (), interval: str = "1s"):
    port = free_port()
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": "cutover", "static_configs": [{"targets": targets}]}],
    }
    cfg = workdir / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    args = [
        need("prometheus"),
        f"--config.file={cfg}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with process(args, workdir / "prometheus.log"):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready")
        yield Prometheus(url)
