"""The gateway as a real server on loopback: modes, fallback, kill switch, outbox durability, 4xx."""

from __future__ import annotations

import json
import signal
import time

import pytest

from cutover.flags.document import render_flags
from cutover.plan.model import load_plan
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore

from .gatewayproc import GatewayProcess, gateway, project_copy

INTERNAL = {"group": "internal"}


def rec(i: int, ns: str = "agents/a", text: str | None = None, **kw) -> dict:
    return {"id": f"r{i}", "namespace": ns, "text": text or f"memory {i} about apples and travel plans", **kw}


def stores(g: GatewayProcess) -> tuple[LegacyStore, MemoryOSStore]:
    return LegacyStore(g.data / "legacy.db"), MemoryOSStore(g.data / "memoryos.db")


def test_legacy_phase_writes_and_reads_legacy_only(tmp_path):
    with gateway(tmp_path, "pre-deployment") as g:
        c = g.client(group="internal")
        r = c.post("/v1/memories", json=rec(1))
        assert r.status_code == 200 and r.json()["path"] == "legacy" and r.headers["X-Cutover-Cohort"] == "control"
        r = c.post("/v1/recall", json={"namespace": "agents/a", "query": "apples"})
        assert r.json()["path"] == "legacy" and [x["id"] for x in r.json()["records"]] == ["r1"]
        time.sleep(0.5)
        legacy, memoryos = stores(g)
        assert legacy.count() == 1 and memoryos.count() == 0 and g.status()["outbox"]["depth"] == {}


def test_shadow_answers_from_legacy_mirrors_writes_and_samples_drift(tmp_path):
    project = project_copy(tmp_path, analysis={"shadow_sample_rate": 1.0})
    with gateway(tmp_path, "shadow", project) as g:
        c = g.client()
        for i in range(30):
            assert c.post("/v1/memories", json=rec(i)).status_code == 200
        g.wait_drained()
        for i in range(30):
            r = c.post("/v1/recall", json={"namespace": "agents/a", "query": f"memory {i}", "limit": 5})
            assert r.json()["path"] == "legacy" and r.json()["cohort"] == "treatment" and not r.json()["fallback"]
        end = time.monotonic() + 20
        while time.monotonic() < end and g.status()["drift"]["samples"] < 30:
            time.sleep(0.1)
        s = g.status()
        assert s["drift"]["samples"] == 30 and s["drift"]["upper_bound"] is not None
        assert s["cutover_ready"]["ready"] == (s["drift"]["upper_bound"] < 0.05)
        assert s["drift"]["mean"] == 0.0 and s["cutover_ready"]["ready"]  # mirrored and drained: parity
        metrics = c.get("/metrics").text
        for measure in ("parity", "jaccard", "rbo"):
            assert f'cutover_drift_distance_count{{measure="{measure}"}} 30.0' in metrics
        assert f"cutover_drift_gate_ready {float(s['cutover_ready']['ready'])}" in metrics  # worked out at scrape
        legacy, memoryos = stores(g)
        assert legacy.count() == memoryos.count() == 30


def test_high_drift_keeps_the_gate_closed_until_repair_and_a_new_window(tmp_path):
    project = project_copy(tmp_path, analysis={"shadow_sample_rate": 1.0})
    with gateway(tmp_path, "shadow", project) as g:
        c = g.client()
        for i in range(25):
            c.post("/v1/memories", json=rec(i))
        g.wait_drained()
        legacy, memoryos = stores(g)
        for r in memoryos.scan():  # MemoryOS holds altered text at the same version: every record differs
            memoryos.put(r.model_copy(update={"text": r.text.replace("memory", "changed")}))
        for _ in range(25):
            c.post("/v1/recall", json={"namespace": "agents/a", "query": "apples", "limit": 5})
        end = time.monotonic() + 20
        while time.monotonic() < end and g.status()["drift"]["samples"] < 25:
            time.sleep(0.1)
        s = g.status()
        assert s["drift"]["samples"] == 25 and s["drift"]["mean"] > 0.9 and not s["cutover_ready"]["ready"]
        assert "cutover_drift_gate_ready 0.0" in c.get("/metrics").text
        # the drift-spike playbook: repair parity, then a new drift window; the gate opens on new reads only
        for r in legacy.scan():  # each record as legacy holds it
            memoryos.put(r)
        assert g.admin(None).post("/admin/drift/restart").status_code == 401
        dropped = g.admin().post("/admin/drift/restart").json()
        assert dropped["dropped_samples"] == 25 and dropped["dropped_mean"] > 0.9
        assert g.status()["drift"]["samples"] == 0 and not g.status()["cutover_ready"]["ready"]
        for _ in range(25):
            c.post("/v1/recall", json={"namespace": "agents/a", "query": "apples", "limit": 5})
        end = time.monotonic() + 20
        while time.monotonic() < end and g.status()["drift"]["samples"] < 25:
            time.sleep(0.1)
        s = g.status()
        assert s["drift"]["samples"] == 25 and s["drift"]["mean"] == 0.0 and s["cutover_ready"]["ready"]


def test_canary_routes_internal_to_memoryos_and_falls_back_under_faults(tmp_path):
    with gateway(tmp_path, "canary") as g:
        c = g.client("agent-x", group="internal")
        c.post("/v1/memories", json=rec(1))
        g.wait_drained()
        r = c.post("/v1/recall", json={"namespace": "agents/a", "query": "apples"})
        assert (r.json()["path"], r.json()["cohort"], r.json()["fallback"]) == ("memoryos", "treatment", False)
        assert [x["id"] for x in r.json()["records"]] == ["r1"]
        g.faults("memoryos", outage=True)
        r = c.post("/v1/recall", json={"namespace": "agents/a", "query": "apples"})
        assert r.status_code == 200 and r.json()["path"] == "legacy" and r.json()["fallback"] is True
        assert r.json()["fallback_reason"] == "outage" and [x["id"] for x in r.json()["records"]] == ["r1"]
        g.faults("memoryos", latency_ms=1000)
        t0 = time.monotonic()
        r = c.post("/v1/recall", json={"namespace": "agents/a", "query": "apples"})
        assert r.json()["fallback_reason"] == "timeout" and time.monotonic() - t0 < 0.9
        g.faults("memoryos", error_rate=1.0)
        assert c.get("/v1/memories/agents/a/r1").json()["fallback"] is True
        metrics = c.get("/metrics").text
        for reason in ("outage", "timeout", "error"):
            assert f'cutover_fallbacks_total{{op="recall",reason="{reason}"}} 1.0' in metrics or reason == "error"
        control = g.client("agent-x")  # not internal; at 5 % this key may be either: read the header
        r = control.post("/v1/recall", json={"namespace": "agents/a", "query": "apples"})
        assert r.headers["X-Cutover-Cohort"] in ("control", "treatment")


def test_full_phase_writes_memoryos_primary_and_mirrors_back_to_legacy(tmp_path):
    with gateway(tmp_path, "full") as g:
        c = g.client()
        r = c.post("/v1/memories", json=rec(1))
        assert r.json()["path"] == "memoryos" and r.json()["write_mode"] == "memoryos-primary"
        g.wait_drained()
        legacy, memoryos = stores(g)
        assert legacy.get("agents/a", "r1").text == memoryos.get("agents/a", "r1").text
        assert memoryos.get("agents/a", "r1").tier == "short"
        # MemoryOS down: the write still lands (legacy takes it) and reaches MemoryOS afterwards
        g.faults("memoryos", outage=True)
        r = c.post("/v1/memories", json=rec(2))
        assert r.status_code == 200 and r.json()["fallback"] is True
        g.faults("memoryos")
        g.wait_drained()
        assert memoryos.get("agents/a", "r2") is not None


def test_status_and_phase_info_show_the_phase_the_live_flags_carry(tmp_path):
    """A phase change by the flags alone (`cutover flags --phase`, a rollback to the previous phase):
    no restart, and /admin/status and cutover_phase_info name the new phase."""
    plan = load_plan(project_copy(tmp_path) / "rollout.yaml")
    flags = tmp_path / "flags.json"
    flags.write_text(json.dumps(render_flags(plan, "shadow", "staging")))
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(tmp_path / "project", data, "shadow", flag_poll_ms=100)
    g.start(flags_file=flags)
    try:
        assert g.status()["phase"] == "shadow"
        flags.write_text(json.dumps(render_flags(plan, "canary", "staging")))
        end = time.monotonic() + 10
        while time.monotonic() < end and g.status()["phase"] != "canary":
            time.sleep(0.1)
        status = g.status()
        assert (status["phase"], status["started_in_phase"]) == ("canary", "shadow")
        metrics = g.client().get("/metrics").text
        assert 'cutover_phase_info{phase="canary",stack="staging"} 1.0' in metrics
        assert 'phase="shadow"' not in metrics
    finally:
        g.stop()


def test_kill_switch_takes_effect_within_one_flag_reload(tmp_path):
    plan = load_plan(project_copy(tmp_path) / "rollout.yaml")
    flags = tmp_path / "flags.json"
    flags.write_text(json.dumps(render_flags(plan, "ramp-75", "staging")))
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(tmp_path / "project", data, "ramp-75", flag_poll_ms=200)
    g.start(flags_file=flags)
    try:
        c = g.client("staff-1", group="internal")
        assert c.post("/v1/recall", json={"namespace": "n", "query": "x"}).json()["path"] == "memoryos"
        flags.write_text(json.dumps(render_flags(plan, "ramp-75", "staging", kill_switch=True)))
        t0 = time.monotonic()
        while c.post("/v1/recall", json={"namespace": "n", "query": "x"}).json()["path"] != "legacy":
            assert time.monotonic() - t0 < 2.0, "kill switch not applied within one reload"
            time.sleep(0.02)
        assert g.status()["flags"]["kill_switch"] is True
        paths = {
            g.client(f"agent-{i}", group="internal").post("/v1/recall", json={"namespace": "n"}).json()["path"]
            for i in range(50)
        }
        assert paths == {"legacy"}
    finally:
        g.stop()


def test_outbox_survives_kill_9_and_drains_on_restart_with_zero_lost_writes(tmp_path):
    project = project_copy(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(project, data, "canary").start()
    try:
        g.faults("memoryos", outage=True)  # mirrors pile up in the outbox
        acked = set()
        c = g.client()
        for i in range(200):
            r = c.post("/v1/memories", json=rec(i, ns=f"agents/{i % 7}"))
            if r.status_code == 200:
                acked.add((f"agents/{i % 7}", f"r{i}"))
        assert len(acked) == 200 and sum(g.status()["outbox"]["depth"].values()) >= 190
    finally:
        g.kill9()
    g2 = GatewayProcess(project, data, "canary")
    g2.port, g2.admin_port = g.port, g.admin_port
    g2.start()
    try:
        g2.wait_drained(60)
        legacy, memoryos = stores(g2)
        in_legacy = {(r.namespace, r.id) for r in legacy.scan()}
        in_memoryos = {(r.namespace, r.id) for r in memoryos.scan()}
        assert acked <= in_legacy and acked <= in_memoryos, f"lost: {len(acked - in_memoryos)}"
    finally:
        g2.stop()


def test_sigterm_lets_the_outbox_drain_then_exits_cleanly(tmp_path):
    project = project_copy(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(project, data, "canary").start()
    try:
        g.faults("memoryos", outage=True)
        c = g.client()
        acked = {
            (f"agents/{i % 5}", f"r{i}")
            for i in range(100)
            if c.post("/v1/memories", json=rec(i, ns=f"agents/{i % 5}")).status_code == 200
        }
        assert len(acked) == 100 and sum(g.status()["outbox"]["depth"].values()) >= 90
        g.faults("memoryos")  # MemoryOS is back; stop the gateway at once
        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(40) == 0  # a clean exit, after the drain
    finally:
        g.stop()
    legacy, memoryos = stores(g)
    assert acked <= {(r.namespace, r.id) for r in memoryos.scan()}
    assert "still waiting" not in (data.parent / f"gateway-{g.port}.log").read_text()

    # MemoryOS stays down: the drain gives up after --drain-timeout; the entries stay for the next start
    g2 = GatewayProcess(project, data, "canary")
    g2.start(None, "--drain-timeout", "1")
    try:
        g2.faults("memoryos", outage=True)
        c = g2.client()
        assert all(c.post("/v1/memories", json=rec(i, ns="agents/late")).status_code == 200 for i in range(20))
        started = time.monotonic()
        g2.proc.send_signal(signal.SIGTERM)
        assert g2.proc.wait(30) == 0 and time.monotonic() - started < 20
    finally:
        g2.stop()
    log = (data.parent / f"gateway-{g2.port}.log").read_text()
    assert "mirror writes still waiting" in log and "drain on the next start" in log
    legacy, _ = stores(g2)
    pending = legacy._conn().execute("SELECT count(*) FROM outbox WHERE target='memoryos'").fetchone()[0]
    assert pending >= 20


def test_retries_are_idempotent_and_versions_never_regress(tmp_path):
    with gateway(tmp_path, "shadow") as g:
        c = g.client()
        for _ in range(3):
            assert c.post("/v1/memories", json=rec(1, version=3)).json()["record"]["version"] == 3
        c.post("/v1/memories", json=rec(1, version=2, text="older"))
        assert c.post("/v1/memories", json=rec(2)).json()["record"]["version"] == 1
        assert c.post("/v1/memories", json=rec(2)).json()["record"]["version"] == 2  # no version: next one
        g.wait_drained()
        legacy, memoryos = stores(g)
        for s in (legacy, memoryos):
            assert s.count() == 2 and s.get("agents/a", "r1").version == 3 and s.get("agents/a", "r1").text != "older"


def test_recall_never_crosses_namespaces(tmp_path):
    with gateway(tmp_path, "canary") as g:
        c = g.client("a", group="internal")
        for i in range(20):
            c.post("/v1/memories", json=rec(i, ns="tenant-a" if i % 2 else "tenant-b", text="shared words here"))
        g.wait_drained()
        for client in (c, g.client("b")):
            for ns in ("tenant-a", "tenant-b"):
                got = client.post("/v1/recall", json={"namespace": ns, "query": "shared words", "limit": 100}).json()
                assert got["records"] and {x["namespace"] for x in got["records"]} == {ns}


@pytest.mark.parametrize(
    "request_kw, status, words",
    [
        ({"content": b"{not json", "headers": {"X-Agent-Id": "a"}}, 400, "malformed JSON"),
        ({"json": rec(1), "headers": {}}, 400, "X-Agent-Id"),
        ({"json": {**rec(1), "colour": "red"}, "headers": {"X-Agent-Id": "a"}}, 422, "colour"),
        ({"json": {**rec(1), "class": "dream"}, "headers": {"X-Agent-Id": "a"}}, 422, "class"),
        ({"json": {"id": "x"}, "headers": {"X-Agent-Id": "a"}}, 422, "namespace"),
        ({"content": b"[1, 2]", "headers": {"X-Agent-Id": "a"}}, 400, "JSON object"),
        ({"content": b"x" * 2_000_000, "headers": {"X-Agent-Id": "a"}}, 413, "limit"),
    ],
)
def test_bad_requests_get_clear_4xx(tmp_path, request_kw, status, words):
    with gateway(tmp_path, "canary") as g:
        import httpx

        r = httpx.post(f"{g.url}/v1/memories", timeout=10, **request_kw)
        assert r.status_code == status and words in r.json()["error"]
        assert httpx.get(f"{g.url}/nope").json()["status"] == 404


def test_admin_api_needs_the_token(tmp_path):
    with gateway(tmp_path, "canary") as g:
        for token in (None, "wrong"):
            r = g.admin(token).post("/admin/faults", json={"store": "memoryos", "outage": True})
            assert r.status_code == 401
        assert g.status()["faults"]["memoryos"]["outage"] is False
        assert g.admin("nope").get("/admin/status").status_code == 401


def test_dead_letters_of_an_outage_are_counted_and_cleared_by_the_repair(tmp_path):
    """Shadow phase: mirrored writes are built by the policy (a plain reconcile, tiers compared, says
    parity); copies given up during a MemoryOS outage show in status and the metric; after recovery
    `cutover reconcile --repair` copies them and clears their dead letters."""
    import subprocess
    import sys

    project = project_copy(tmp_path, gateway={"outbox_max_attempts": 2, "outbox_backoff_s": 0.05})
    with gateway(tmp_path, "shadow", project) as g:
        c = g.client()
        old = {**rec(100), "class": "semantic", "observed_at": int(time.time() * 1000) - 40 * 86_400_000}
        for body in [rec(i) for i in range(5)] + [old]:
            assert c.post("/v1/memories", json=body).status_code == 200
        g.wait_drained()
        src, dst = f"sqlite:{g.data / 'legacy.db'}", f"sqlite:{g.data / 'memoryos.db'}"

        def reconcile(*extra: str) -> subprocess.CompletedProcess:
            args = [sys.executable, "-m", "cutover.cli", "reconcile", "--source", src, "--target", dst, *extra]
            return subprocess.run(args, capture_output=True, text=True, timeout=120)

        plain = reconcile()
        assert plain.returncode == 0 and "parity: yes" in plain.stdout, plain.stdout + plain.stderr
        _, memoryos = stores(g)
        assert memoryos.get("agents/a", old["id"]).tier == "long"  # the policy's tier, not the store's default
        g.faults("memoryos", outage=True)
        for i in range(10, 20):
            assert c.post("/v1/memories", json=rec(i)).status_code == 200
        end = time.monotonic() + 30
        while time.monotonic() < end and g.status()["outbox"]["dead_letters"] < 10:
            time.sleep(0.2)
        s = g.status()["outbox"]
        assert s["dead_letters"] == 10 and s["dead_letters_by_target"] == {"memoryos": 10} and not s["depth"]
        assert 'cutover_outbox_dead_letters{target="memoryos"} 10.0' in c.get("/metrics").text
        g.faults("memoryos")
        assert reconcile().returncode == 1
        fix = reconcile("--repair")
        assert fix.returncode == 0 and "10 copied" in fix.stdout and "10 dead letters cleared" in fix.stdout, fix.stdout
        assert g.status()["outbox"]["dead_letters"] == 0
        assert 'cutover_outbox_dead_letters{target="memoryos"} 0.0' in c.get("/metrics").text
        after = reconcile()
        assert after.returncode == 0 and "parity: yes" in after.stdout, after.stdout


def test_answers_name_the_phase_of_the_flags_that_decided(tmp_path):
    """X-Cutover-Phase: what a Deployment's gateway (no --phase) and the load tests' samples rely on."""
    with gateway(tmp_path, "ramp-25") as g:
        r = g.client("agent-1").post("/v1/recall", json={"namespace": "n"})
        assert r.status_code == 200 and r.headers["X-Cutover-Phase"] == "ramp-25"
        assert "phase" not in r.json()  # a header, not a body field
        assert g.status()["phase"] == "ramp-25"


def test_the_gateway_counts_the_rollbacks_its_flags_record_manual_ones_included(tmp_path):
    """A hand rollback (`cutover flags --kill-switch on`) and a controller's (recorded by the same
    change()) reach cutover_rollbacks_total of the gateway that serves the flags, once each; a change
    that is no rollback, and the change in force at start, are not counted."""
    import subprocess
    import sys

    from cutover.flags.backend import FlagFile
    from cutover.flags.change import change
    from cutover.flags.state import FlagState, render_state, state_of

    from .conftest import ROOT

    plan = load_plan(ROOT / "rollout.yaml")
    flags = FlagFile(tmp_path / "flags.json")
    flags.write(render_state(plan, FlagState("ramp-50"), "staging"))
    change(
        flags, plan, "staging", FlagState("ramp-50"), FlagState("ramp-50", True),
        seen=flags.read_versioned(), by="manual", reason="before",
    )  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(project_copy(tmp_path), data, None, flag_poll_ms=100).start(flags_file=flags.path)

    def counted() -> dict[str, float]:
        lines = g.client().get("/metrics").text.splitlines()
        return {
            line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith("cutover_rollbacks_total{")
        }

    def cutover_flags(*args: str) -> None:
        cmd = [sys.executable, "-m", "cutover", "flags", "--flags-file", str(flags.path), "--project-dir", str(ROOT)]
        r = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    def wait_for(want: dict[str, float]) -> dict[str, float]:
        end = time.monotonic() + 10
        while time.monotonic() < end and counted() != want:
            time.sleep(0.1)
        return counted()

    try:
        assert counted() == {}  # the kill switch in force at start was counted by whoever set it
        cutover_flags("--kill-switch", "off")  # no rollback
        time.sleep(0.5)
        assert counted() == {}
        cutover_flags("--kill-switch", "on", "--reason", "p99 doubled")
        assert wait_for({'level="immediate",trigger="manual"': 1.0}) == {'level="immediate",trigger="manual"': 1.0}
        seen = flags.read_versioned()
        change(
            flags, plan, "staging", state_of(seen.flags()), FlagState("ramp-25"),
            seen=seen, by="controller", reason="CutoverDriftHigh",
        )  # fmt: skip
        want = {'level="immediate",trigger="manual"': 1.0, 'level="full",trigger="CutoverDriftHigh"': 1.0}
        assert wait_for(want) == want
    finally:
        g.stop()
