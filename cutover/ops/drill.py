"""The chaos drill against a running stack (`cutover drill`), as the ramp phase's exit asks for it.

A fault is injected into MemoryOS through the gateway's admin API (`POST /admin/faults`) while a
bounded number of clients send traffic to the gateway; the drill waits for the first firing
rollback alert in Prometheus, the controller's rollback (its `GET /status`) and the gateway's
recovery (a probe answered without fallback), then removes the fault. Every write acknowledged
during the drill is then read back through the gateway, which reads legacy once the kill switch is
on (MemoryOS-primary writes must have reached legacy through the reverse mirror), and the
runbook's post-rollback reconciliation runs for real, as a process:
`cutover reconcile --source LEGACY --target MEMORYOS --after-rollback LOG --repair`. The result is
drill evidence (`cutover.evidence/v1`, kind `drill`): PROMOTE when the alert fired, the flags rolled
back, the gateway recovered, clients kept getting answers (client error rate at most the plan's
fallback target), no acknowledged write was missing from legacy and reconciliation reached parity.

A component that does not answer is a CutoverError (exit 2) before anything is written.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cutover.judge.evidence import Check, Evidence, new_evidence
from cutover.ops import prometheus
from cutover.ops.driftgate import admin_status
from cutover.plan.errors import CutoverError
from cutover.plan.model import Plan
from cutover.render.alerts import AlertName

# The faults of the drill and their default sizes: the admin API's field and value.
FAULTS: dict[str, tuple[str, float]] = {"latency": ("latency_ms", 800.0), "errors": ("error_rate", 1.0)}
PROBE_HEADERS = {"X-Agent-Id": "cutover-drill-probe", "X-Group": "internal"}  # the internal group: treatment
TIMEOUT_S = 10
WARM_S = 2.0  # traffic before the fault: the rates Prometheus compares start from a clean baseline


def parse_faults(specs: list[str]) -> dict[str, float]:
    """`latency`, `latency=MS`, `errors`, `errors=RATE` (repeatable; together: injected at once)."""
    fault: dict[str, float] = {}
    for spec in specs or ["errors"]:
        kind, sep, size = spec.partition("=")
        if kind not in FAULTS:
            raise CutoverError(f"--fault {spec!r}", fix="latency[=MS] or errors[=RATE], e.g. --fault latency=800")
        key, default = FAULTS[kind]
        try:
            fault[key] = float(size) if sep else default
        except ValueError:
            raise CutoverError(f"--fault {spec!r}: {size!r} is not a number", fix="e.g. errors=1.0") from None
        if key == "error_rate" and not 0 < fault[key] <= 1:
            raise CutoverError(f"--fault {spec!r}: an error rate is in (0, 1]")
        if key == "latency_ms" and not 0 < fault[key] <= 60_000:
            raise CutoverError(f"--fault {spec!r}: latency in ms, at most 60000")
    return fault


@dataclass(frozen=True)
class Components:
    """The running stack's URLs, and the reads and writes the drill makes on them."""

    gateway: str
    admin: str
    token: str
    prometheus: str
    controller: str

    def _call(self, what: str, url: str, method: str = "GET", **kw: Any) -> Any:
        try:
            r = httpx.request(method, url, timeout=TIMEOUT_S, **kw)
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise CutoverError(f"cannot reach {what} at {url}: {exc or type(exc).__name__}") from None

    def status(self) -> dict[str, Any]:
        return admin_status(self.admin, self.token)

    def set_fault(self, fault: dict[str, float]) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = f"{self.admin.rstrip('/')}/admin/faults"
        self._call("the gateway's admin API", url, "POST", json={"store": "memoryos", **fault}, headers=headers)

    def controller_status(self) -> dict[str, Any]:
        status: dict[str, Any] = self._call("the controller", f"{self.controller.rstrip('/')}/status")
        return status

    def rollbacks(self) -> list[dict[str, Any]]:
        """The controller's rollbacks so far, oldest first."""
        return list(self.controller_status()["rollbacks"])

    def ignored(self) -> list[dict[str, Any]]:
        """The alerts the controller ignored lately (within a hold-down), oldest first."""
        return list(self.controller_status()["ignored"])

    def firing(self) -> list[str]:
        """The names of the firing alerts that ask for a rollback (label action=rollback)."""
        try:
            alerts = prometheus.firing_alerts(self.prometheus, action="rollback")
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise CutoverError(f"cannot reach Prometheus at {self.prometheus}: {exc or type(exc).__name__}") from None
        return sorted({a["alertname"] for a in alerts})

    def first_firing(self, alert: str, since: float) -> float | None:
        """Seconds from `since` (epoch) to the first sample of the alert firing (Prometheus's ALERTS)."""
        series = prometheus.query_range(self.prometheus, prometheus.firing_expr(alert), since, time.time(), 0.5)
        stamps = [float(v[0]) for s in series for v in s["values"]]
        return (min(stamps) - since) if stamps else None

    def probe(self) -> dict[str, Any]:
        """A recall of the internal group (a treatment client): which path answered, with fallback or not."""
        body = {"namespace": "cutover-drill", "query": "probe"}
        url = f"{self.gateway.rstrip('/')}/v1/recall"
        answer: dict[str, Any] = self._call("the gateway", url, "POST", json=body, headers=PROBE_HEADERS)
        return answer

    def preflight(self) -> dict[str, Any]:
        """Every component answers (else CutoverError): the gateway's public and admin APIs,
        Prometheus and the controller. Returns the gateway's admin status."""
        self._call("the gateway", f"{self.gateway.rstrip('/')}/healthz")
        status = self.status()
        self.rollbacks()
        self.firing()
        return status


@dataclass
class Traffic:
    """Clients of the gateway: recalls and writes (`writes` of them) in namespace `namespace`, at
    most `rate` requests a second in all; every acknowledged write is kept."""

    gateway: str
    namespace: str = "cutover-drill"
    clients: int = 3
    rate: float = 60.0
    writes: float = 0.3
    ok: int = 0
    errors: int = 0
    fallbacks: int = 0
    acked: list[tuple[str, str, str]] = field(default_factory=list)  # namespace, id, write_mode
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _client(self, w: int) -> None:
        rng = random.Random(w * 7919 + time.time_ns())
        interval, next_at = self.clients / self.rate, time.monotonic()
        with httpx.Client(base_url=self.gateway, timeout=TIMEOUT_S) as c:
            while not self._stop.is_set():
                next_at += interval
                k, headers = rng.randrange(300), {"X-Agent-Id": f"drill-agent-{rng.randrange(500)}"}
                try:
                    if rng.random() < self.writes:
                        rid = f"drill-{w}-{rng.getrandbits(40):x}"
                        body = {"id": rid, "namespace": self.namespace, "text": f"drill note kw{k}"}
                        r = c.post("/v1/memories", json=body, headers=headers)
                        if r.status_code == 200:
                            with self._lock:
                                self.acked.append((self.namespace, rid, str(r.json().get("write_mode"))))
                    else:
                        query = {"namespace": self.namespace, "query": f"kw{k}", "limit": 10}
                        r = c.post("/v1/recall", json=query, headers=headers)
                    ok = r.status_code == 200
                    fb = ok and bool(r.json().get("fallback", False))
                except (httpx.HTTPError, ValueError):
                    ok, fb = False, False
                with self._lock:
                    self.ok += ok
                    self.errors += not ok
                    self.fallbacks += fb
                self._stop.wait(max(0.0, next_at - time.monotonic()))


@dataclass(frozen=True)
class Stores:
    """What the post-rollback reconciliation reads: the store URIs and the controller's rollback log."""

    legacy: str
    memoryos: str
    rollback_log: Path


def wait_drained(c: Components, timeout: float) -> int:
    """Wait until the gateway's outboxes are empty (the mirrors caught up); the depth left."""
    end = time.monotonic() + timeout
    while True:
        depth = sum(dict(c.status()["outbox"]["depth"]).values())
        if depth == 0 or time.monotonic() >= end:
            return int(depth)
        time.sleep(0.5)


def read_back(c: Components, acked: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Each acknowledged write, read through the gateway after the rollback: found, and answered by legacy."""
    missing: list[str] = []
    with httpx.Client(base_url=c.gateway, timeout=TIMEOUT_S) as client:
        for ns, rid, _mode in acked:
            try:
                r = client.get(f"/v1/memories/{ns}/{rid}", headers=PROBE_HEADERS)
                found = r.status_code == 200 and r.json().get("path") == "legacy"
            except (httpx.HTTPError, ValueError):
                found = False
            if not found:
                missing.append(f"{ns}/{rid}")
    return {
        "acknowledged": len(acked),
        "acknowledged_memoryos_primary": sum(m == "memoryos-primary" for *_, m in acked),
        "readable_from_legacy": len(acked) - len(missing),
        "missing": len(missing),
        "missing_examples": missing[:10],
    }


def latest_logged(log: Path) -> float | None:
    """When the rollback log's latest rollback happened (epoch s), or None."""
    try:
        lines = [x for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]
        return float(json.loads(lines[-1])["at"]) if lines else None
    except (OSError, ValueError, KeyError):
        return None


def reconcile(stores: Stores, timeout: float = 600) -> dict[str, Any]:
    """`cutover reconcile --after-rollback LOG --repair`, as the runbook runs it (a process): its exit
    code, parity, totals and repair counts."""
    with tempfile.TemporaryDirectory(prefix="cutover-drill-") as tmp:
        args = [
            "reconcile", "--source", stores.legacy, "--target", stores.memoryos,
            "--after-rollback", str(stores.rollback_log), "--repair", "--report", tmp,
        ]  # fmt: skip
        r = subprocess.run([sys.executable, "-m", "cutover", *args], capture_output=True, text=True, timeout=timeout)
        report = Path(tmp) / "reconcile.json"
        result: dict[str, Any] = {"command": "cutover " + " ".join(args[:-2]), "exit_code": r.returncode}
        if not report.is_file():
            return {**result, "parity": False, "error": " ".join((r.stdout + r.stderr).split())[-300:]}
        data = json.loads(report.read_text())
    rep, repair = data["report"], data["repair"]
    return {
        **result,
        "parity": bool(rep["parity"]) and r.returncode == 0,
        "records_scanned": rep["records_scanned"],
        "window": rep.get("window"),
        "totals": rep["totals"],
        **{k: repair.get(k) for k in ("copied_missing", "replaced_stale", "deleted_extra")},
    }


def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} s"


@dataclass
class Drill:
    plan: Plan
    stack: str
    components: Components
    stores: Stores
    fault: dict[str, float]
    timeout: float = 900.0
    traffic: Traffic | None = None
    say: Callable[[str], object] = print
    expected_alert: str = AlertName.FALLBACK_RATE_HIGH

    def run(self, phase: str | None = None) -> Evidence:
        c = self.components
        status = c.preflight()
        if status.get("stack") not in (None, self.stack):
            raise CutoverError(f"the gateway at {c.admin} serves stack {status['stack']!r}, not {self.stack!r}")
        phase = phase or status.get("phase")
        if not phase:
            raise CutoverError("the gateway does not say which phase it serves", fix="name it: --phase PHASE")
        self.plan.index(phase)
        if status["flags"].get("kill_switch"):
            raise CutoverError("the kill switch is already on: a drill needs the flags rolled forward first")
        end = time.monotonic() + self.timeout
        while already := c.firing():  # an earlier incident's alert: the drill times its own
            if time.monotonic() >= end:
                raise CutoverError(f"rollback alerts still firing: {', '.join(already)}", fix="wait until they resolve")
            self.say(f"  waiting for rollback alerts to resolve first: {', '.join(already)}")
            time.sleep(2)
        rollbacks_before = len(c.rollbacks())
        traffic = self.traffic or Traffic(c.gateway)
        self.say(f"drill: {phase}, fault {self.fault} in MemoryOS, {traffic.clients} clients at {traffic.rate:g} req/s")
        traffic.start()
        t_alert = t_flip = t_recovered = None
        fired: str | None = None
        recovered_on: dict[str, Any] = {}
        try:
            time.sleep(WARM_S)
            t0, wall0 = time.monotonic(), time.time()
            c.set_fault(self.fault)
            while time.monotonic() < t0 + self.timeout:
                now = time.monotonic() - t0
                names = c.firing() if t_alert is None else []
                if names:
                    t_alert, fired = now, self.expected_alert if self.expected_alert in names else names[0]
                    self.say(f"  alert {fired} firing after {now:.1f} s")
                if t_flip is None and len(c.rollbacks()) > rollbacks_before:
                    t_flip = now
                    self.say(f"  the controller rolled back after {now:.1f} s")
                if t_flip is not None:
                    probe = c.probe()
                    if not probe.get("fallback"):
                        t_recovered, recovered_on = time.monotonic() - t0, {"path": probe.get("path")}
                        self.say(f"  the gateway answers without fallback after {t_recovered:.1f} s")
                        break
                time.sleep(0.25)
            time.sleep(1)
        finally:
            traffic.stop()
            c.set_fault({})
        history = c.rollbacks()
        rollback = history[-1] if len(history) > rollbacks_before else None
        ignored = [i for i in c.ignored() if float(i.get("at", 0)) >= wall0] if rollback is None else []
        if t_alert is None and rollback is not None:  # it fired between two polls: ALERTS has the time
            fired = rollback["trigger"]
            t_alert = c.first_firing(fired, wall0)
        total = traffic.ok + traffic.errors
        result = {
            "fault": self.fault,
            "alert": fired,
            "expected_alert": self.expected_alert,
            "time_to_alert_s": t_alert,
            "time_to_flag_flip_s": t_flip,
            "time_to_recovery_s": t_recovered,
            "recovered_on": recovered_on.get("path"),
            "requests": total,
            "client_errors": traffic.errors,
            "client_error_rate": traffic.errors / max(total, 1),
            "fallback_answers": traffic.fallbacks,
            "rollback": rollback,
            "controller_ignored": ignored[-3:],
        }
        return self.verdict(phase, result, rollback, traffic, wall0)

    def verdict(
        self, phase: str, res: dict[str, Any], rollback: dict[str, Any] | None, traffic: Traffic, wall0: float
    ) -> Evidence:
        c, target = self.components, self.plan.effective(phase).monitoring.fallback_rate_max
        drained = wait_drained(c, min(self.timeout, 120))
        writes = recon = None
        if rollback is not None:
            self.say(f"  reading {len(traffic.acked)} acknowledged writes back through the gateway (legacy)")
            writes = read_back(c, traffic.acked)
            self.say(f"  {' '.join(['cutover reconcile', '--after-rollback', str(self.stores.rollback_log)])} --repair")
            recon = reconcile(self.stores)
        checks = [
            Check(name="rollback alert fired", status="pass" if res["alert"] else "fail", value=res["time_to_alert_s"],
                  detail=f"{res['alert'] or 'none'} after {_f(res['time_to_alert_s'])}"),
            Check(name="flags rolled back", status="pass" if rollback else "fail", value=res["time_to_flag_flip_s"],
                  detail=f"{rollback['level']} ({rollback['trigger']}) after {_f(res['time_to_flag_flip_s'])}"
                  if rollback else f"no rollback within {self.timeout:g} s" + "".join(
                      f"; the controller ignored {i.get('trigger', 'an alert')}: {i.get('reason')}"
                      for i in res["controller_ignored"])),
            Check(name="gateway recovered", status="pass" if res["time_to_recovery_s"] is not None else "fail",
                  value=res["time_to_recovery_s"], detail=f"answers without fallback after "
                  f"{_f(res['time_to_recovery_s'])}"),
            Check(name="clients kept getting answers", value=res["client_error_rate"], threshold=target,
                  status="pass" if res["requests"] and res["client_error_rate"] <= target else "fail",
                  detail=f"client error rate {res['client_error_rate']:.2%} over {res['requests']} requests "
                  f"(at most {target:.2%}), {res['fallback_answers']} answered by fallback"),
            Check(name="acknowledged writes readable from legacy", value=writes["missing"] if writes else None,
                  threshold=0, status="nodata" if writes is None else "pass" if not writes["missing"] else "fail",
                  detail=f"{writes['readable_from_legacy']} of {writes['acknowledged']} "
                  f"({writes['acknowledged_memoryos_primary']} MemoryOS-primary), missing {writes['missing']}"
                  if writes else "not read: no rollback"),
            Check(name="post-rollback reconciliation: parity", status="nodata" if recon is None else
                  "pass" if recon["parity"] else "fail", detail="not run: no rollback" if recon is None else
                  f"{recon.get('copied_missing')} copied, {recon.get('replaced_stale')} replaced; "
                  f"totals {json.dumps(recon.get('totals'))}" if "totals" in recon else recon.get("error", "")),
        ]  # fmt: skip
        logged = latest_logged(self.stores.rollback_log)
        if rollback is not None and (logged is None or logged < wall0):
            where = self.stores.rollback_log
            checks.append(Check(name="the rollback log records the drill's rollback", status="fail",
                                detail=f"{where}: latest rollback {'none' if logged is None else f'at {logged:.0f}'}, "
                                f"the drill began at {wall0:.0f} (is it the controller's --log?)"))  # fmt: skip
        if drained:
            checks.append(Check(name="outboxes drained", status="fail", value=drained, detail=f"{drained} left"))
        ok = all(ch.status == "pass" for ch in checks)
        return new_evidence(
            "drill",
            phase,
            "PROMOTE" if ok else "HOLD",
            stack=self.stack,
            plan_digest=self.plan.digest(),
            reasons=[f"{ch.name}: {ch.detail}" for ch in checks if ok or ch.status != "pass"],
            checks=checks,
            details={
                "drills": [res],
                "writes": writes,
                "reconcile": recon,
                "started_at": wall0,
                "components": {k: getattr(c, k) for k in ("gateway", "admin", "prometheus", "controller")},
            },
        )
