"""The one-command rehearsal: the campaign on one machine, on loopback, with the real components.

Render the staging stack; promtool check and test; start Prometheus, Alertmanager, the gateway
(SQLite stores) and the rollback controller; seed a legacy corpus, migrate it and reconcile. Shadow:
first a drift spike (a third of the migrated records taken out of MemoryOS) keeps the gate into
canary closed, then `cutover reconcile --repair` and a new drift window open it. Canary: first a
regression injected into MemoryOS reads is judged ROLLBACK, the gate stays closed and the abort
alert makes the controller roll back; then the clean canary is judged. Every judged phase runs the
canary scenario until the judge has its minimum samples, and is judged with the plan's thresholds
(only `min_samples` lowered; the report says why). A ramp phase runs a chaos drill (latency, then
errors, injected into MemoryOS: `cutover drill`, as an operator runs it against the stack) in which the
alert fires in Prometheus, Alertmanager calls the controller, the flags roll back, clients keep getting
answers through fallback, and `cutover reconcile --after-rollback --repair` repairs the window; then on
to full. Time is compressed: the rules rendered for the rehearsal have
their windows and `for:` durations divided by `scale`, and the phases' minimum durations (days) are
divided by DURATION_SCALE (`cutover flags` and `cutover gate --time-scale`: a day is a second).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from cutover.flags.backend import FlagFile
from cutover.flags.state import FlagState, render_state
from cutover.migration import reconcile as rc
from cutover.migration.migrate import migrate
from cutover.migration.options import Options
from cutover.migration.tiering import load_policy
from cutover.ops import prometheus
from cutover.plan.stacks import load_project
from cutover.render.alerts import render_rules
from cutover.render.rendering import render, write_rendering
from cutover.render.workloads.common import analyze_args
from cutover.render.workloads.controller import ControllerRoute
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import Record


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


class Rehearsal:
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
    def step_render(self) -> None:
        self.say("render and promtool")
        distinct: dict[str, str] = {}
        for phase in self.plan.phase_names:
            r = render(self.plan, "staging", self.cfg, phase)
            write_rendering(r, self.out / "render" / phase)
            distinct.setdefault(json.dumps(sorted(g["name"] + str(len(g["rules"])) for g in r.rules["groups"])), phase)
        promtool = _binary("promtool")
        checked = subprocess.run(
            [promtool, "check", "rules", *[str(self.out / "render" / p / "rules.yml") for p in self.plan.phase_names]],
            capture_output=True,
            text=True,
        )
        self.check(
            "render",
            f"promtool check rules, {len(self.plan.phase_names)} phases",
            checked.returncode == 0,
            checked.stderr.strip()[-300:],
        )

        def test(phase: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [promtool, "test", "rules", "rules.test.yml"],
                cwd=self.out / "render" / phase,
                capture_output=True,
                text=True,
            )

        with ThreadPoolExecutor(2) as pool:
            for phase, res in zip(distinct.values(), pool.map(test, distinct.values())):
                self.check("render", f"promtool test rules ({phase})", res.returncode == 0, res.stderr.strip()[-300:])

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

    def seed_migrate_reconcile(self, n: int = SEED_RECORDS) -> None:
        self.say("seed a legacy corpus, migrate it, reconcile")
        legacy = LegacyStore(self.out / "data" / "legacy.db")
        now = int(time.time() * 1000)
        corpus = []
        for i in range(n):
            # `class` (the field's alias) is a Python keyword, so it goes in by name
            cls: dict[str, Any] = {"class": "semantic"} if i % 5 == 0 else {}
            corpus.append(
                Record(
                    id=f"c{i}",
                    namespace=f"corp/{i % 20}",
                    text=f"memo {i} about kw{i % 300} and more",
                    tags=["persona:ops"] if i % 7 == 0 else [],
                    observed_at=now - (i % 90) * 86_400_000,
                    **cls,
                )
            )
        legacy.put_many(corpus)
        src, dst = f"sqlite:{self.out / 'data' / 'legacy.db'}", f"sqlite:{self.out / 'data' / 'memoryos.db'}"
        t0 = time.monotonic()
        result = migrate(
            Options(source=src, target=dst, policy=load_policy(), quarantine=self.out / "quarantine.jsonl")
        )
        self.check(
            "migrate",
            f"{result['migrated']} of {n} records migrated",
            result["migrated"] == n,
            f"tiers {result['by_tier']}, {time.monotonic() - t0:.1f} s",
            **{k: result[k] for k in ("read", "migrated", "quarantined")},
        )
        rep = rc.compare(src, dst, load_policy())
        rc.write_reports(rep, self.out / "reconcile-migration")
        self.check(
            "migrate",
            "reconcile legacy vs MemoryOS: parity",
            rep["parity"],
            json.dumps(rep["totals"]),
            records=rep["records_scanned"],
        )

    def traffic(self, seconds: float, threads: int = 4, writes: float = 0.3) -> dict[str, Any]:
        """Clients on loopback: recalls of precise keys over the corpus and new writes; counts answers."""
        import random

        stats: dict[str, Any] = {"ok": 0, "errors": 0, "fallbacks": 0, "acked": set()}
        stop = time.monotonic() + seconds
        lock = threading.Lock()

        def worker(w: int) -> None:
            rng = random.Random(w * 7919 + int(time.time()))
            with httpx.Client(base_url=self.gw, timeout=5) as c:
                while time.monotonic() < stop:
                    k = rng.randrange(300)
                    headers = {"X-Agent-Id": f"agent-{rng.randrange(500)}"}
                    try:
                        if rng.random() < writes:
                            rid = f"t{w}-{rng.getrandbits(40):x}"
                            r = c.post(
                                "/v1/memories",
                                json={"id": rid, "namespace": f"corp/{k % 20}", "text": f"note kw{k}"},
                                headers=headers,
                            )
                            if r.status_code == 200:
                                with lock:
                                    stats["acked"].add((f"corp/{k % 20}", rid))
                        else:
                            r = c.post(
                                "/v1/recall",
                                json={"namespace": f"corp/{k % 20}", "query": f"kw{k}", "limit": 10},
                                headers=headers,
                            )
                        ok = r.status_code == 200
                        fb = ok and r.json().get("fallback", False)
                    except httpx.HTTPError:
                        ok, fb = False, False
                    with lock:
                        stats["ok" if ok else "errors"] += 1
                        stats["fallbacks"] += bool(fb)

        ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        return stats

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.admin.get("/admin/status").json()
        return status

    def rollbacks(self) -> list[dict[str, Any]]:
        """The controller's rollbacks so far (its GET /status), oldest first."""
        rollbacks: list[dict[str, Any]] = httpx.get(f"{self.ctrl_url}/status", timeout=5).json()["rollbacks"]
        return rollbacks

    def lost_batch(self) -> int:
        """The drift spike's cause, as the drift-spike playbook names it: records missing in MemoryOS
        (a migration batch that never landed). A third of the migrated corpus is taken out of the
        MemoryOS store behind the gateway's back, so no mirror or outbox knows of it."""
        mos = MemoryOSStore(self.out / "data" / "memoryos.db")
        return sum(mos.delete(f"corp/{i % 20}", f"c{i}") for i in range(0, SEED_RECORDS, 3))

    def drift_evidence(self) -> tuple[bool, dict[str, Any]]:
        """Shadow traffic until the drift gate has 3x its minimum samples, then `cutover evidence drift`,
        as an operator runs it against the gateway's admin API: it writes the gate's state as drift
        evidence (PROMOTE, exit 0; HOLD, exit 1), and the newest evidence is what the gate reads."""
        need = self.plan.effective("shadow").analysis.drift_gate_min_samples
        end = time.monotonic() + 60
        while time.monotonic() < end and self.status()["drift"]["samples"] < need * 3:
            self.traffic(3, writes=0.1)
        folder = self.out / "evidence" / "shadow"
        before = set(folder.glob("drift-*.json"))
        r = self.cutover(
            "evidence", "drift", "--admin", f"http://127.0.0.1:{self.admin_port}", "--stack", "staging",
            "--phase", "shadow", "--out", str(self.out / "evidence"), "--project-dir", str(self.project),
            env={"CUTOVER_ADMIN_TOKEN": "rehearsal-token"},
        )  # fmt: skip
        written = sorted(set(folder.glob("drift-*.json")) - before)
        if r.returncode not in (0, 1) or len(written) != 1:
            raise RuntimeError(f"cutover evidence drift failed: {' '.join((r.stdout + r.stderr).split())[-300:]}")
        drift: dict[str, Any] = json.loads(written[0].read_text())["details"]["drift"]
        return r.returncode == 0, drift

    def step_shadow(self) -> bool:
        self.say("shadow: mirror writes, shadow reads, drift gate (first with records missing in MemoryOS)")
        self.set_phase("shadow")
        rollbacks_before = len(self.rollbacks())
        lost = self.lost_batch()
        ready, drift = self.drift_evidence()
        self.check(
            "shadow",
            f"drift spike ({lost} migrated records missing in MemoryOS): drift gate not ready "
            f"({drift['samples']} samples)",
            not ready,
            f"mean drift {drift['mean']}, upper bound {drift['upper_bound']}",
            mean=drift["mean"],
            upper_bound=drift["upper_bound"],
        )
        self.gate("canary", expect_open=False)
        # the playbook's mitigation: repair parity with the production command, then a new window
        legacy, mos = f"sqlite:{self.out / 'data' / 'legacy.db'}", f"sqlite:{self.out / 'data' / 'memoryos.db'}"
        repair = self.cutover("reconcile", "--source", legacy, "--target", mos, "--repair")
        self.check("shadow", "cutover reconcile --repair: parity", repair.returncode == 0, repair.stdout.strip()[-300:])
        # the spike may have fired the drift alert and the controller rolled shadow back (a rollback
        # starts the phase anew): as an operator, wait for the alert to resolve, then roll forward again
        self.wait_alerts_resolved("shadow")
        if len(self.rollbacks()) > rollbacks_before:
            self.set_phase("shadow")
        dropped = self.admin.post("/admin/drift/restart").json()
        ready, drift = self.drift_evidence()
        self.check(
            "shadow",
            f"after the repair: drift gate ready ({drift['samples']} samples)",
            ready,
            f"mean drift {drift['mean']}, upper bound {drift['upper_bound']}; the old window "
            f"({dropped['dropped_samples']} samples, mean {dropped['dropped_mean']}) dropped",
            mean=drift["mean"],
            upper_bound=drift["upper_bound"],
        )
        return self.gate("canary")

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

    def gate(self, phase: str, expect_open: bool = True) -> bool:
        """`cutover gate`, as an operator runs it. expect_open=False: the check is that it refuses."""
        if expect_open:
            self.wait_min_duration()
        r = self.cutover(
            "gate",
            "--phase",
            phase,
            "--evidence",
            str(self.out / "evidence"),
            "--stack",
            "staging",
            "--flags-file",
            str(self.flags.path),
            "--time-scale",
            str(DURATION_SCALE),
            "--file",
            str(self.plan_path),
        )
        opened = r.returncode == 0
        detail = " ".join((r.stdout + r.stderr).split())[-400:]
        if expect_open:
            return self.check("gate", f"gate into {phase} open", opened, detail)
        return self.check("gate", f"gate into {phase} stays closed", r.returncode == 1, detail)

    def samples_for_verdict(self, phase: str, name: str, stop: Callable[[], bool] = lambda: False) -> list[Path] | None:
        """`cutover loadtest canary` in chunks until every cohort and operation has the judge's
        minimum samples (`missing_samples`), bounded by JUDGE_TIMEOUT_S; None (a failed check with
        the counts) when the time is up."""
        from cutover.judge.samples import load_samples
        from cutover.judge.verdict import missing_samples

        a = self.judge_plan.effective(phase).analysis
        folder = self.out / "samples" / name
        folder.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        deadline = time.monotonic() + JUDGE_TIMEOUT_S
        while True:
            chunk = folder / f"{len(files) + 1}.jsonl"
            r = self.cutover(
                "loadtest",
                "canary",
                "--users",
                "12",
                "--spawn-rate",
                "12",
                "--run-time",
                f"{CHUNK_S}s",
                "--host",
                self.gw,
                "--samples",
                str(chunk),
                "--locust-arg=--precise-keys=300",
                "--locust-arg=--namespaces=20",
            )
            if r.returncode != 0:
                self.check(phase, "Locust canary run", False, r.stderr[-300:])
                return None
            files.append(chunk)
            data = load_samples(files)
            missing = missing_samples(data, a)
            if missing and stop():
                self.say(f"  {phase}: flags rolled back after {len(files)} run(s); judging what was sampled")
                return files
            if not missing:
                self.say(f"  {phase}: {len(data)} samples in {len(files)} run(s) of {CHUNK_S} s")
                return files
            if time.monotonic() > deadline:
                self.check(
                    phase,
                    f"minimum samples within {JUDGE_TIMEOUT_S} s",
                    False,
                    f"after {len(files)} runs of {CHUNK_S} s still short: " + "; ".join(missing),
                )
                return None

    def analyze(self, files: list[Path], phase: str, name: str, kind: str = "verdict") -> dict[str, Any]:
        """`cutover analyze`, as an operator runs it, with the rehearsal's judge plan (the plan but
        for min_samples); the verdict.json it writes is the gate's evidence."""
        out = self.out / "evidence" / name
        args = analyze_args("staging", str(self.judge_plan_file), phase=phase, kind=kind, out=str(out))
        r = self.cutover(*args, *map(str, files))
        if r.returncode not in (0, 1, 3):  # PROMOTE, HOLD, ROLLBACK
            raise RuntimeError(f"cutover analyze failed: {' '.join(r.stderr.split())[-300:]}")
        verdict: dict[str, Any] = json.loads((out / "verdict.json").read_text())
        return verdict

    def judged(
        self, phase: str, name: str | None = None, expect: str = "PROMOTE", stop: Callable[[], bool] = lambda: False
    ) -> bool:
        """The canary scenario until the judge has its samples, then `cutover analyze` with the
        plan's thresholds (only min_samples lowered); the verdict is evidence. `expect`: the verdict
        this run must give (a guard rail's check is that it closes)."""
        name = name or phase
        files = self.samples_for_verdict(phase, name, stop)
        if files is None:
            return False
        ev = self.analyze(files, phase, name)
        n = ev.get("samples", {})
        return self.check(
            phase,
            f"judge verdict {ev['verdict']}{'' if expect == 'PROMOTE' else f' (expected {expect})'} "
            f"({n.get('control', 0)} control, {n.get('treatment', 0)} treatment samples)",
            ev["verdict"] == expect,
            "; ".join(ev.get("reasons", []))[:400],
            score=ev.get("details", {}).get("score"),
        )

    def step_pre_deployment(self) -> bool:
        """Phase 0's exit evidence, as an operator collects it: a baseline and a soak run on the
        legacy path (`cutover loadtest baseline|soak`, `cutover analyze --kind baseline|soak`)."""
        self.say("pre-deployment: baseline and soak on the legacy path")
        ok = True
        for kind, scenario, seconds, extra in (
            ("baseline", "baseline", 12, []),
            # the production mix (30 % writes) with selective queries (--precise-keys: each asks for one of
            # 300 key words, as an agent asks for a memory): writes grow the corpus, as in production,
            # and the judge's trend margin says how much slower that may make recalls. (Queries of two
            # common words, as the baseline sends, match a share of every write: in namespaces that
            # start nearly empty a 20 s run grew their matches several times over, median x1.37.)
            ("soak", "soak", 20, ["--locust-arg=--probe-every=2", "--locust-arg=--precise-keys=300"]),
        ):
            samples = self.out / "samples" / f"{scenario}.jsonl"
            r = self.cutover(
                "loadtest", scenario, "--users", "12", "--spawn-rate", "12", "--run-time", f"{seconds}s",
                "--host", self.gw, "--samples", str(samples), *extra,
            )  # fmt: skip
            if r.returncode != 0:
                ok = self.check("pre-deployment", f"Locust {scenario} run", False, r.stderr[-300:]) and ok
                continue
            ev = self.analyze([samples], "pre-deployment", f"pre-deployment/{kind}", kind)
            ok = self.check(
                "pre-deployment", f"{kind}: {ev['verdict']}", ev["verdict"] == "PROMOTE",
                "; ".join(ev.get("reasons", []))[:300],
            ) and ok  # fmt: skip
        return ok

    def step_regression(self, phase: str) -> bool:
        """The guard rails closing: the MemoryOS path made slower (REGRESSION_MS added to each read),
        the judge says ROLLBACK, the gate into the next phase stays closed, the abort alert fires
        and the controller rolls the flags back. Then the fault goes and the phase starts over."""
        nxt = self.plan.phase_names[self.plan.index(phase) + 1]
        self.say(f"{phase} with a regression: {REGRESSION_MS} ms added to MemoryOS reads")
        before = len(self.rollbacks())

        def rolled_back() -> bool:
            return len(self.rollbacks()) > before

        self.admin.post("/admin/faults", json={"store": "memoryos", "latency_ms": REGRESSION_MS}).raise_for_status()
        try:
            judged = self.judged(phase, f"{phase}-regression", expect="ROLLBACK", stop=rolled_back)
            closed = self.gate(nxt, expect_open=False)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not rolled_back():
                self.traffic(2, threads=3, writes=0.2)
            rb = self.rollbacks()[-1] if rolled_back() else None
            acted = self.check(
                phase,
                "the abort alert fired and the controller rolled the flags back",
                rb is not None,
                f"alert {rb['trigger']}, level {rb['level']}" if rb else "no rollback within 60 s",
            )
        finally:
            self.admin.post("/admin/faults", json={"store": "memoryos"}).raise_for_status()
        resolved = self.wait_alerts_resolved(phase)
        return judged and closed and acted and resolved

    def wait_alerts_resolved(self, phase: str) -> bool:
        """As an operator would: roll forward only once the abort alerts have resolved, or the
        controller rolls the new flags back again as soon as its hold-down is over."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.firing_rollback_alerts():
            self.traffic(2, threads=2, writes=0.2)
        still = self.firing_rollback_alerts()
        return self.check(
            phase,
            "no abort alert firing before moving on",
            not still,
            f"still firing: {', '.join(still)}" if still else "",
        )

    def wait_min_duration(self) -> None:
        """As an operator would: the phase's minimum duration (on the rehearsal's clock) is spent
        before its gate is asked; traffic goes on meanwhile."""
        from cutover.flags.state import phase_since, state_of

        doc = self.flags.read()
        since = phase_since(doc)
        if since is None:
            return
        left = since + self.plan.phase(state_of(doc).phase).min_duration / DURATION_SCALE - time.time()
        if left > 0:
            self.traffic(left + 0.5, threads=2, writes=0.2)

    def firing_rollback_alerts(self) -> list[str]:
        """Names of the firing alerts that ask for a rollback (label action=rollback)."""
        return sorted({labels["alertname"] for labels in prometheus.firing_alerts(self.prom, action="rollback")})

    def run_drill(self, phase: str, fault: str) -> tuple[int, dict[str, Any] | None, str]:
        """`cutover drill`, as an operator runs it against the running stack: its exit code, the
        evidence it wrote (None when it wrote none) and its output."""
        folder = self.out / "evidence" / phase
        before = set(folder.glob("drill-*.json"))
        r = self.cutover(
            "drill", "--gateway", self.gw, "--admin", f"http://127.0.0.1:{self.admin_port}",
            "--prometheus", self.prom, "--controller", self.ctrl_url, "--fault", fault, "--phase", phase,
            "--legacy", f"sqlite:{self.out / 'data' / 'legacy.db'}",
            "--memoryos", f"sqlite:{self.out / 'data' / 'memoryos.db'}",
            "--rollback-log", str(self.out / "rollbacks.jsonl"), "--timeout", "90",
            "--stack", "staging", "--out", str(self.out / "evidence"), "--project-dir", str(self.project),
            env={"CUTOVER_ADMIN_TOKEN": "rehearsal-token"},
        )  # fmt: skip
        written = sorted(set(folder.glob("drill-*.json")) - before)
        ev = json.loads(written[0].read_text()) if written else None
        return r.returncode, ev, " ".join((r.stdout + r.stderr).split())

    def step_drill(self, phase: str) -> bool:
        self.say(f"{phase}: chaos drill (latency, then errors, injected into MemoryOS): cutover drill")
        ok = True
        for fault in ("latency", "errors"):
            self.set_phase(phase)  # roll forward again before each injection
            history = self.rollbacks()
            if history:
                wait = self.hold_down - (time.time() - history[-1]["at"])
                if wait > 0:
                    time.sleep(wait + 0.5)
            code, ev, output = self.run_drill(phase, fault)
            if ev is None:
                ok = self.check("drill", f"cutover drill --fault {fault}", False, output[-300:])
                continue
            res, recon = ev["details"]["drills"][0], ev["details"]["reconcile"] or {}
            self.drills.append(res)
            ok = self.check(
                "drill",
                f"{fault}: alert fired, flags rolled back, clients answered ({ev['verdict']}, exit {code})",
                code == 0 and ev["verdict"] == "PROMOTE",
                f"alert {res['alert']} after {res['time_to_alert_s'] or float('nan'):.1f} s, flag flip after "
                f"{res['time_to_flag_flip_s'] or float('nan'):.1f} s, "
                f"recovered after {res['time_to_recovery_s'] or float('nan'):.1f} s; "
                f"client error rate {res['client_error_rate']:.2%} over {res['requests']} requests, "
                f"{res['fallback_answers']} answered by fallback"
                + ("" if ev["verdict"] == "PROMOTE" else "; " + "; ".join(ev["reasons"])[:300]),
                **{k: v for k, v in res.items() if k not in ("rollback", "fault")},
            ) and ok  # fmt: skip
            ok = self.check(
                "drill",
                f"{fault}: cutover reconcile --after-rollback --repair: parity",
                bool(recon.get("parity")),
                f"{recon.get('copied_missing')} copied, {recon.get('replaced_stale')} replaced, "
                f"{recon.get('records_scanned')} records in the window",
                **{k: recon.get(k) for k in ("copied_missing", "replaced_stale", "records_scanned")},
            ) and ok  # fmt: skip
        self.set_phase(phase)
        return ok

    def wait_outbox(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.status()["outbox"]["depth"]:
            time.sleep(0.2)

    def step_full(self) -> None:
        self.say("full: MemoryOS primary, writes mirrored back to legacy")
        self.set_phase("full")
        stats = self.traffic(4, threads=3, writes=0.5)
        self.acked |= stats["acked"]
        self.wait_outbox()
        legacy, mos = LegacyStore(self.out / "data" / "legacy.db"), MemoryOSStore(self.out / "data" / "memoryos.db")
        in_legacy = {(r.namespace, r.id) for r in legacy.scan()}
        in_mos = {(r.namespace, r.id) for r in mos.scan()}
        both = self.acked & in_legacy & in_mos
        self.check(
            "full",
            f"writes acknowledged {len(self.acked)} = writes present in both stores {len(both)}",
            len(both) == len(self.acked),
            f"missing in legacy {len(self.acked - in_legacy)}, in MemoryOS {len(self.acked - in_mos)}",
            acknowledged=len(self.acked),
            in_both=len(both),
        )
        rep = rc.compare(
            f"sqlite:{self.out / 'data' / 'legacy.db'}",
            f"sqlite:{self.out / 'data' / 'memoryos.db'}",
            load_policy(),
        )
        self.check("full", "final reconcile legacy vs MemoryOS: parity", rep["parity"], json.dumps(rep["totals"]))

    def run(self, phases: list[str]) -> int:
        for d in ("logs", "evidence"):
            (self.out / d).mkdir(parents=True, exist_ok=True)
        self.acked: set[tuple[str, str]] = set()
        self.drills: list[dict[str, Any]] = []
        # The judge's plan for the rehearsal is the plan, but for the minimum samples (the report says why).
        a = self.plan.analysis
        self.overrides = {}
        if a.min_samples > REHEARSAL_MIN_SAMPLES:
            self.overrides["analysis.min_samples"] = (
                f"{REHEARSAL_MIN_SAMPLES} (plan: {a.min_samples}): time compression. A judged phase runs about a "
                f"minute here instead of days; at the canary's share the treatment cohort sends a few remembers a "
                f"second, so the plan's {a.min_samples} per cohort and operation would take an hour per phase. "
                "Every other threshold (p99 regression, error rate, overlap, alpha) is the plan's."
            )
        self.judge_plan = self.plan.model_copy(
            update={"analysis": a.model_copy(update={"min_samples": min(a.min_samples, REHEARSAL_MIN_SAMPLES)})}
        )
        # Every command of the rehearsal reads that plan, from a project of its own: the evidence it
        # writes names that plan's digest, which is the one its gates count evidence under.
        project = self.out / "project"
        project.mkdir(parents=True, exist_ok=True)
        for stack_file in self.project.glob("Pulumi*.yaml"):
            shutil.copy(stack_file, project / stack_file.name)
        self.judge_plan_file = project / "rollout.yaml"
        self.judge_plan_file.write_text(
            "# the plan with the rehearsal's one override (analysis.min_samples); see report.md\n"
            + yaml.safe_dump(self.judge_plan.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
        )
        self.project, self.plan_path = project, self.judge_plan_file
        self.plan, self.cfg = load_project(project, "staging")
        try:
            self.step_render()
            self.start()
            self.seed_migrate_reconcile()
            order = self.plan.phase_names
            if not self.step_pre_deployment() or not self.gate(order[1]):
                raise RuntimeError("pre-deployment did not pass its gate")
            for phase in order[1:]:
                if phase not in phases:
                    continue
                if phase == "shadow":
                    if not self.step_shadow():
                        break
                    continue
                self.set_phase(phase)
                if phase == "full":
                    self.step_full()
                    break
                self.traffic(3, writes=0.3)  # warm the phase
                if phase == "canary":
                    self.step_regression(phase)
                    self.set_phase(phase)  # the fault is gone: the phase starts over
                    self.traffic(3, writes=0.3)
                ok = True
                if "drill" in self.plan.phase(phase).exit_evidence:
                    # the drill's rollbacks start the phase anew: the verdict is collected after them
                    ok = self.step_drill(phase)
                    self.set_phase(phase)
                    self.traffic(3, writes=0.3)
                ok = self.judged(phase) and ok
                if not ok or not self.gate(order[order.index(phase) + 1]):
                    break
        except Exception as exc:  # a component that did not start or answer is a failed check, reported
            self.check("rehearsal", "ran to the end", False, f"{type(exc).__name__}: {exc}")
        finally:
            self.stop()
        return self.write_report()

    def write_report(self) -> int:
        ok = bool(self.checks) and all(c.ok for c in self.checks)
        elapsed = self.elapsed()
        data = {
            "ok": ok,
            "elapsed_s": round(elapsed, 1),
            "time_scale": self.scale,
            "duration_scale": DURATION_SCALE,
            "overrides": getattr(self, "overrides", {}),
            "checks": [c.__dict__ for c in self.checks],
            "drills": getattr(self, "drills", []),
        }
        (self.out / "rehearsal.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        lines = [
            "# Rehearsal report",
            "",
            f"**{'PASSED' if ok else 'FAILED'}** · {len(self.checks)} checks, "
            f"{sum(not c.ok for c in self.checks)} failed · {elapsed:.0f} s · time compressed {self.scale:g}x "
            f"(alert windows), {DURATION_SCALE:g}x (minimum durations: a day is a second)",
            "",
            "Rehearsal overrides of the plan: "
            + ("; ".join(f"`{k}` = {v}" for k, v in getattr(self, "overrides", {}).items()) or "none"),
            "",
            "| step | check | result | figures |",
            "|---|---|---|---|",
        ]
        for c in self.checks:
            figs = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in c.figures.items())
            detail = " — " + c.detail if c.detail else ""
            lines.append(f"| {c.step} | {c.name}{detail} | {'ok' if c.ok else '**FAIL**'} | {figs} |")
        plots = sorted(str(p.relative_to(self.out)) for p in (self.out / "evidence").rglob("*.png"))
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
        (self.out / "report.md").write_text("\n".join(lines) + "\n")
        self.say(f"rehearsal {'PASSED' if ok else 'FAILED'} in {elapsed:.0f} s: {self.out / 'report.md'}")
        return 0 if ok else 1
