"""The rehearsal's scenarios: the phases' steps and the run."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from cutover.ops.rehearsal.harness import (
    CHUNK_S,
    JUDGE_TIMEOUT_S,
    REGRESSION_MS,
    REHEARSAL_MIN_SAMPLES,
    SEED_RECORDS,
    _binary,
)
from cutover.ops.rehearsal.report import write_report
from cutover.ops.rehearsal.traffic import Traffic
from cutover.plan.campaign import Campaign
from cutover.plan.stacks import load_project
from cutover.render.rendering import render, write_rendering
from cutover.render.workloads.common import analyze_args
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import Record


class Rehearsal(Traffic):
    """The campaign, phase by phase: each step is the commands a cluster user runs, checked."""

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
        report = self.out / "migrate.json"
        r = self.cutover(
            "migrate", "--from", src, "--to", dst, "--quarantine", str(self.out / "quarantine.jsonl"),
            "--report", str(report),
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"cutover migrate failed: {' '.join((r.stdout + r.stderr).split())[-300:]}")
        result = json.loads(report.read_text())
        self.check(
            "migrate",
            f"{result['migrated']} of {n} records migrated",
            result["migrated"] == n,
            f"tiers {result['by_tier']}, {time.monotonic() - t0:.1f} s",
            **{k: result[k] for k in ("read", "migrated", "quarantined")},
        )
        rep = self.reconcile(src, dst, self.out / "reconcile-migration")
        self.check(
            "migrate",
            "reconcile legacy vs MemoryOS: parity",
            rep["parity"],
            json.dumps(rep["totals"]),
            records=rep["records_scanned"],
        )

    def reconcile(self, source: str, target: str, report: Path) -> dict[str, Any]:
        """`cutover reconcile`, as an operator runs it; its report (reconcile.json)."""
        r = self.cutover("reconcile", "--source", source, "--target", target, "--report", str(report))
        if r.returncode not in (0, 1) or not (report / "reconcile.json").is_file():
            raise RuntimeError(f"cutover reconcile failed: {' '.join((r.stdout + r.stderr).split())[-300:]}")
        found: dict[str, Any] = json.loads((report / "reconcile.json").read_text())["report"]
        return found

    def lost_batch(self) -> int:
        """The drift spike's cause, as the drift-spike playbook names it: records missing in MemoryOS
        (a migration batch that never landed). A third of the migrated corpus is taken out of the
        MemoryOS store behind the gateway's back, so no mirror or outbox knows of it."""
        mos = MemoryOSStore(self.out / "data" / "memoryos.db")
        return sum(mos.delete(f"corp/{i % 20}", f"c{i}") for i in range(0, SEED_RECORDS, 3))

    def drift_evidence(self, phase: str) -> tuple[bool, dict[str, Any]]:
        """Shadow traffic until the drift gate has 3x its minimum samples, then `cutover evidence drift`,
        as an operator runs it against the gateway's admin API: it writes the gate's state as drift
        evidence (PROMOTE, exit 0; HOLD, exit 1), and the newest evidence is what the gate reads."""
        need = self.plan.effective(phase).analysis.drift_gate_min_samples
        end = time.monotonic() + 60
        while time.monotonic() < end and self.status()["drift"]["samples"] < need * 3:
            self.traffic(3, writes=0.1)
        folder = self.out / "evidence" / phase
        before = set(folder.glob("drift-*.json"))
        r = self.cutover(
            "evidence", "drift", "--admin", f"http://127.0.0.1:{self.admin_port}", "--stack", "staging",
            "--phase", phase, "--out", str(self.out / "evidence"), "--project-dir", str(self.project),
            env={"CUTOVER_ADMIN_TOKEN": "rehearsal-token"},
        )  # fmt: skip
        written = sorted(set(folder.glob("drift-*.json")) - before)
        if r.returncode not in (0, 1) or len(written) != 1:
            raise RuntimeError(f"cutover evidence drift failed: {' '.join((r.stdout + r.stderr).split())[-300:]}")
        drift: dict[str, Any] = json.loads(written[0].read_text())["details"]["drift"]
        return r.returncode == 0, drift

    def step_drift(self, phase: str, nxt: str) -> bool:
        """A phase whose exit needs drift evidence (shadow): the drift gate closing first on a drift
        spike, the playbook's repair, then drift evidence from the commands and the gate into `nxt`."""
        self.say(f"{phase}: mirror writes, shadow reads, drift gate (first with records missing in MemoryOS)")
        self.set_phase(phase)
        rollbacks_before = len(self.rollbacks())
        lost = self.lost_batch()
        ready, drift = self.drift_evidence(phase)
        self.check(
            phase,
            f"drift spike ({lost} migrated records missing in MemoryOS): drift gate not ready "
            f"({drift['samples']} samples)",
            not ready,
            f"mean drift {drift['mean']}, upper bound {drift['upper_bound']}",
            mean=drift["mean"],
            upper_bound=drift["upper_bound"],
        )
        self.gate(nxt, expect_open=False)
        # the playbook's mitigation: repair parity with the production command, then a new window
        legacy, mos = f"sqlite:{self.out / 'data' / 'legacy.db'}", f"sqlite:{self.out / 'data' / 'memoryos.db'}"
        repair = self.cutover("reconcile", "--source", legacy, "--target", mos, "--repair")
        self.check(phase, "cutover reconcile --repair: parity", repair.returncode == 0, repair.stdout.strip()[-300:])
        # the spike may have fired the drift alert and the controller rolled shadow back (a rollback
        # starts the phase anew): as an operator, wait for the alert to resolve, then roll forward again
        self.wait_alerts_resolved(phase)
        if len(self.rollbacks()) > rollbacks_before:
            self.set_phase(phase)
        dropped = self.admin.post("/admin/drift/restart").json()
        ready, drift = self.drift_evidence(phase)
        self.check(
            phase,
            f"after the repair: drift gate ready ({drift['samples']} samples)",
            ready,
            f"mean drift {drift['mean']}, upper bound {drift['upper_bound']}; the old window "
            f"({dropped['dropped_samples']} samples, mean {dropped['dropped_mean']}) dropped",
            mean=drift["mean"],
            upper_bound=drift["upper_bound"],
        )
        return self.gate(nxt)

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
        phase = Campaign(self.plan).first
        self.say(f"{phase}: baseline and soak on the legacy path")
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
                ok = self.check(phase, f"Locust {scenario} run", False, r.stderr[-300:]) and ok
                continue
            ev = self.analyze([samples], phase, f"{phase}/{kind}", kind)
            ok = self.check(
                phase, f"{kind}: {ev['verdict']}", ev["verdict"] == "PROMOTE",
                "; ".join(ev.get("reasons", []))[:300],
            ) and ok  # fmt: skip
        return ok

    def step_regression(self, phase: str) -> bool:
        """The guard rails closing: the MemoryOS path made slower (REGRESSION_MS added to each read),
        the judge says ROLLBACK, the gate into the next phase stays closed, the abort alert fires
        and the controller rolls the flags back. Then the fault goes and the phase starts over."""
        nxt = Campaign(self.plan).next(phase)
        assert nxt is not None  # a judged phase has a next one
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

    def step_full(self, phase: str) -> None:
        """The last phase: MemoryOS primary; every acknowledged write in both stores, final parity."""
        self.say(f"{phase}: MemoryOS primary, writes mirrored back to legacy")
        self.set_phase(phase)
        stats = self.traffic(4, threads=3, writes=0.5)
        self.acked |= stats["acked"]
        self.wait_outbox()
        legacy, mos = LegacyStore(self.out / "data" / "legacy.db"), MemoryOSStore(self.out / "data" / "memoryos.db")
        in_legacy = {(r.namespace, r.id) for r in legacy.scan()}
        in_mos = {(r.namespace, r.id) for r in mos.scan()}
        both = self.acked & in_legacy & in_mos
        self.check(
            phase,
            f"writes acknowledged {len(self.acked)} = writes present in both stores {len(both)}",
            len(both) == len(self.acked),
            f"missing in legacy {len(self.acked - in_legacy)}, in MemoryOS {len(self.acked - in_mos)}",
            acknowledged=len(self.acked),
            in_both=len(both),
        )
        rep = self.reconcile(
            f"sqlite:{self.out / 'data' / 'legacy.db'}",
            f"sqlite:{self.out / 'data' / 'memoryos.db'}",
            self.out / "reconcile-final",
        )
        self.check(phase, "final reconcile legacy vs MemoryOS: parity", rep["parity"], json.dumps(rep["totals"]))

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
            # Each phase's steps follow from what its exit needs (the campaign's `exit_evidence`),
            # not from its name: drift, a verdict (the first verdict phase also shows the guard
            # rails closing on a regression), a drill; the last phase checks the writes and parity.
            campaign = Campaign(self.plan)
            first_judged = next((p for p in campaign.phases if "verdict" in campaign.exit_evidence(p)), None)
            second = campaign.next(campaign.first)
            if second is None or not self.step_pre_deployment() or not self.gate(second):
                raise RuntimeError(f"{campaign.first} did not pass its gate")
            for phase in campaign.phases[1:]:
                if phase not in phases:
                    continue
                needs, nxt = campaign.exit_evidence(phase), campaign.next(phase)
                if nxt is None:
                    self.step_full(phase)
                    break
                if "drift" in needs:
                    if not self.step_drift(phase, nxt):
                        break
                    continue
                self.set_phase(phase)
                self.traffic(3, writes=0.3)  # warm the phase
                if phase == first_judged:
                    self.step_regression(phase)
                    self.set_phase(phase)  # the fault is gone: the phase starts over
                    self.traffic(3, writes=0.3)
                ok = True
                if "drill" in needs:
                    # the drill's rollbacks start the phase anew: the verdict is collected after them
                    ok = self.step_drill(phase)
                    self.set_phase(phase)
                    self.traffic(3, writes=0.3)
                if "verdict" in needs:
                    ok = self.judged(phase) and ok
                if not ok or not self.gate(nxt):
                    break
        except Exception as exc:  # a component that did not start or answer is a failed check, reported
            self.check("rehearsal", "ran to the end", False, f"{type(exc).__name__}: {exc}")
        finally:
            self.stop()
        return write_report(self)
