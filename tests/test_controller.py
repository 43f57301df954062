"""The rollback controller and `cutover flags`: real flag files evaluated by flagd, the webhook's
secret, hold-down and the three rollback levels (an SLO breach rolled back end to end through real
Prometheus and Alertmanager: `cutover drill`, tests/test_drill.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cutover.flags.backend import FlagFile, apply_state
from cutover.flags.state import FlagState, render_state, state_of
from cutover.ops.controller import Controller

from .conftest import ROOT, flagd_validator

FIRING = {
    "version": "4",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "CutoverTreatmentErrorRateHigh",
                "severity": "critical",
                "action": "rollback",
                "rollback_level": "immediate",
            },
        }
    ],
}


@pytest.fixture
def flagfile(tmp_path, plan):
    f = FlagFile(tmp_path / "flags.json")
    f.write(render_state(plan, FlagState("ramp-50"), "staging"))
    return f


def test_states_render_valid_flag_sets(plan):
    v = flagd_validator()
    for state in (
        FlagState("canary", percentage=12.5),
        FlagState("ramp-75", kill_switch=True),
        FlagState("shadow", read_path="legacy"),
    ):
        doc = render_state(plan, state, "staging")
        assert not list(v.iter_errors(doc)) and state_of(doc) == state


def test_one_change_asks_the_gate_only_for_a_move_that_is_no_rollback(plan, flagfile):
    """`cutover flags` and the controller share `change()`: a forward move asks the gate (a closed one
    refuses, or is forced past with a reason and recorded); a rollback never asks it."""
    from cutover.flags.change import change
    from cutover.plan.errors import TransitionError

    asked = []

    def closed(current: str, target: str) -> None:
        asked.append((current, target))
        raise TransitionError(f"the gate into {target!r} is closed")

    seen = flagfile.read_versioned()
    before = state_of(seen.flags())
    with pytest.raises(TransitionError):
        change(flagfile, plan, "staging", before, FlagState("ramp-75"), seen=seen, by="manual", gate=closed)
    assert asked == [("ramp-50", "ramp-75")] and state_of(flagfile.read()) == before
    warned: list[str] = []
    forward = change(
        flagfile, plan, "staging", before, FlagState("ramp-75"), seen=seen, by="manual", reason="INC-1", gate=closed,
        force=True, warn=warned.append,
    )  # fmt: skip
    assert forward.change.forced and forward.level == "" and warned[0].startswith("FORCED")
    assert flagfile.read()["metadata"]["changeForced"] is True and state_of(flagfile.read()).phase == "ramp-75"
    asked.clear()
    back = change(
        flagfile, plan, "staging", forward.after, FlagState("ramp-50"),
        seen=flagfile.read_versioned(), by="manual", gate=closed,
    )  # fmt: skip
    assert asked == [] and back.level == "full" and back.change.reason == "rollback"
    assert back.rollback(plan, "manual", {}).after == FlagState("ramp-50").describe(plan)


def test_levels(plan, flagfile, tmp_path, evaluate):
    ctrl = Controller(plan, "staging", flagfile, "s3cret", tmp_path / "rollbacks.jsonl", clock=lambda: 1000.0)
    r = ctrl.rollback("CutoverTreatmentErrorRateHigh", "partial")
    assert state_of(flagfile.read()).percentage == 25 and "25 %" in r.after  # the previous ramp's percentage
    ctrl.clock = lambda: 1000.0 + plan.abort_triggers.hold_down + 1
    ctrl.rollback("CutoverOutboxLagHigh", "full")
    assert state_of(flagfile.read()).phase == "ramp-25"
    ctrl.clock = lambda: 1000.0 + 2 * plan.abort_triggers.hold_down + 2
    ctrl.rollback("CutoverDriftHigh", "immediate")
    ev = evaluate(flagfile.read())
    assert {ev.details(plan.flag_keys.read_path, f"a{i}", "memoryos").value for i in range(300)} == {"legacy"}
    log = [json.loads(x) for x in (tmp_path / "rollbacks.jsonl").read_text().splitlines()]
    assert [x["level"] for x in log] == ["partial", "full", "immediate"] and all(
        x["before"] and x["after"] for x in log
    )


def test_webhook_needs_the_secret_and_hold_down_prevents_flapping(plan, flagfile, tmp_path):
    from starlette.testclient import TestClient

    from cutover.ops.webhook import controller_app

    ctrl = Controller(plan, "staging", flagfile, "s3cret", tmp_path / "log.jsonl")
    client = TestClient(controller_app(ctrl))
    before = flagfile.read()
    assert client.post("/alertmanager", json=FIRING).status_code == 401
    assert client.post("/alertmanager", json=FIRING, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert flagfile.read() == before
    r = client.post("/alertmanager", json=FIRING, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and len(r.json()["rollbacks"]) == 1 and state_of(flagfile.read()).kill_switch
    again = client.post("/alertmanager", json=FIRING, headers={"X-Cutover-Secret": "s3cret"})
    assert again.json()["rollbacks"] == [] and "hold-down" in ctrl.status()["ignored"][0]["reason"]
    assert (
        'cutover_rollbacks_total{level="immediate",trigger="CutoverTreatmentErrorRateHigh"} 1.0'
        in client.get("/metrics").text
    )
    warning = {
        "alerts": [{"status": "firing", "labels": {"alertname": "X", "severity": "warning", "action": "rollback"}}]
    }
    assert client.post("/alertmanager", json=warning, headers={"X-Cutover-Secret": "s3cret"}).json()["rollbacks"] == []


def test_flags_command_sets_verifies_and_shows(flagfile):
    cmd = [sys.executable, "-m", "cutover.cli", "flags", "--flags-file", str(flagfile.path), "--project-dir", str(ROOT)]
    shown = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "phase ramp-50" in shown.stdout and "kill switch off" in shown.stdout
    r = subprocess.run(cmd + ["--kill-switch", "on"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "set and verified" in r.stdout and state_of(flagfile.read()).kill_switch
    r = subprocess.run(cmd + ["--percentage", "140"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cutover_succeeds_after_healthy_drift_and_later_writes_land_in_memoryos(tmp_path, plan):
    from cutover.judge.evidence import check_transition, new_evidence
    from cutover.store.memoryos import MemoryOSStore

    from .gatewayproc import GatewayProcess, project_copy

    project = project_copy(tmp_path, analysis={"shadow_sample_rate": 1.0})
    flags = FlagFile(tmp_path / "flags.json")
    flags.write(render_state(plan, FlagState("shadow"), "staging"))
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(project, data, "shadow", flag_poll_ms=100)
    g.start(flags_file=flags.path)
    try:
        c = g.client()
        for i in range(30):
            c.post("/v1/memories", json={"id": f"r{i}", "namespace": "n", "text": f"fact kw{i}"})
        g.wait_drained()
        for i in range(30):
            c.post("/v1/recall", json={"namespace": "n", "query": f"kw{i}"})
        end = time.monotonic() + 20
        while time.monotonic() < end and not g.status()["cutover_ready"]["ready"]:
            time.sleep(0.1)
        ready = g.status()["cutover_ready"]
        assert ready["ready"], ready["reason"]
        evidence = [
            new_evidence(
                "drift", "shadow", "PROMOTE", stack="staging", plan_digest=plan.digest(), reasons=[ready["reason"]]
            )
        ]
        assert check_transition(plan, "shadow", "canary", evidence, "staging")[0] == "forward"
        apply_state(flags, plan, FlagState("full"), "staging")  # the cutover (forward phases compressed)
        end = time.monotonic() + 5
        while (
            time.monotonic() < end
            and c.post("/v1/memories", json={"id": "probe", "namespace": "n", "text": "x"}).json()["path"] != "memoryos"
        ):
            time.sleep(0.05)
        r = c.post("/v1/memories", json={"id": "after", "namespace": "n", "text": "written after cutover"})
        assert r.json()["path"] == "memoryos" and r.json()["write_mode"] == "memoryos-primary"
        assert MemoryOSStore(data / "memoryos.db").get("n", "after").text == "written after cutover"
        g.wait_drained()
        from cutover.store.legacy import LegacyStore

        assert LegacyStore(data / "legacy.db").get("n", "after") is not None  # mirrored back for a safe rollback
    finally:
        g.stop()


def test_a_forward_flag_change_goes_through_the_gate_and_a_rollback_is_recorded(tmp_path, plan, evidence_dir):
    """`cutover flags --phase` refuses what `pulumi up` refuses (a jump, a closed gate, a phase left
    before its minimum duration), --force needs a reason and is recorded; a manual kill switch lands
    in the rollback log that `cutover reconcile --after-rollback` reads, and in the flags' metadata."""
    flagfile = FlagFile(tmp_path / "flags.json")
    flagfile.write(render_state(plan, FlagState("shadow"), "staging"))
    evidence = evidence_dir
    cmd = [sys.executable, "-m", "cutover", "flags", "--flags-file", str(flagfile.path), "--project-dir", str(ROOT)]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)

    r = run("--phase", "full")
    assert r.returncode == 2 and "phases advance one at a time" in r.stderr
    r = run("--phase", "canary")  # no evidence: the gate is closed
    assert (
        r.returncode == 2 and "gate into 'canary' is closed" in r.stderr and state_of(flagfile.read()).phase == "shadow"
    )
    r = run("--phase", "canary", "--force")
    assert r.returncode == 2 and "--force needs --reason" in r.stderr
    r = run("--phase", "canary", "--evidence", str(evidence / "shadow-drift-ready.json"))
    assert r.returncode == 0 and state_of(flagfile.read()).phase == "canary", r.stderr
    assert flagfile.read()["metadata"]["changedBy"] == "manual" and not flagfile.read()["metadata"]["changeForced"]
    began = flagfile.read()["metadata"]["phaseSince"]
    assert abs(began - time.time()) < 60  # canary began now: its 7d minimum is ahead
    r = run("--phase", "ramp-25", "--evidence", str(evidence))
    assert r.returncode == 2 and "phase 'canary' has a minimum duration of 7d: " in r.stderr, r.stderr
    assert state_of(flagfile.read()).phase == "canary"
    r = run("--percentage", "3")  # less treatment: a (partial) rollback, and the phase begins anew
    assert r.returncode == 0 and flagfile.read()["metadata"]["phaseSince"] > began
    rollbacks = tmp_path / "rollbacks.jsonl"
    assert len(rollbacks.read_text().splitlines()) == 1  # the partial one
    r = run("--phase", "ramp-25", "--force", "--reason", "INC-7: evidence store lost")
    assert r.returncode == 0 and "FORCED" in r.stderr and flagfile.read()["metadata"]["changeForced"] is True
    assert len(rollbacks.read_text().splitlines()) == 1  # moving forward is no rollback
    r = run("--kill-switch", "on", "--reason", "p99 doubled")
    assert r.returncode == 0 and state_of(flagfile.read()).kill_switch
    meta = flagfile.read()["metadata"]
    assert (meta["rollbackLevel"], meta["changeReason"]) == ("immediate", "p99 doubled")
    line = [json.loads(x) for x in rollbacks.read_text().splitlines()][-1]
    assert (line["trigger"], line["level"], line["labels"]["reason"]) == ("manual", "immediate", "p99 doubled")
    r = run("--phase", "canary")  # back: always allowed, and a rollback
    assert r.returncode == 0 and len(rollbacks.read_text().splitlines()) == 3


def test_cutover_controller_command_rolls_back_on_a_webhook_and_refuses_a_weak_secret(tmp_path, plan):
    """`cutover controller`, the process a cluster runs: the webhook with the secret from a file
    kill-switches the flag file, the log and the metric record it, a second alert inside the
    hold-down is ignored; no secret, or a short one, exits 2 before it listens."""
    import httpx

    from .promstack import free_port, wait_http

    flagfile = FlagFile(tmp_path / "flags.json")
    flagfile.write(render_state(plan, FlagState("ramp-25"), "staging"))
    cmd = [
        sys.executable,
        "-m",
        "cutover",
        "controller",
        "--flags-file",
        str(flagfile.path),
        "--project-dir",
        str(ROOT),
    ]
    weak = tmp_path / "weak"
    weak.write_text("short\n")
    for extra in ([], ["--secret-file", str(weak)]):
        r = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert r.returncode == 2 and "webhook secret" in r.stderr and "Traceback" not in r.stderr
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef0123\n")
    port = free_port()
    proc = subprocess.Popen(
        cmd + ["--secret-file", str(secret), "--port", str(port), "--log", str(tmp_path / "rollbacks.jsonl")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/status")
        assert httpx.post(f"{url}/alertmanager", json=FIRING, timeout=10).status_code == 401
        auth = {"Authorization": "Bearer 0123456789abcdef0123"}
        done = httpx.post(f"{url}/alertmanager", json=FIRING, headers=auth, timeout=10).json()["rollbacks"]
        assert [d["trigger"] for d in done] == ["CutoverTreatmentErrorRateHigh"]
        assert state_of(flagfile.read()).kill_switch
        again = httpx.post(f"{url}/alertmanager", json=FIRING, headers=auth, timeout=10).json()
        assert again["rollbacks"] == []  # inside the hold-down
        status = httpx.get(f"{url}/status", timeout=10).json()
        assert len(status["rollbacks"]) == 1 and "hold-down" in status["ignored"][0]["reason"]
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'cutover_rollbacks_total{level="immediate",trigger="CutoverTreatmentErrorRateHigh"} 1.0' in metrics
        log = [json.loads(x) for x in (tmp_path / "rollbacks.jsonl").read_text().splitlines()]
        assert [x["trigger"] for x in log] == ["CutoverTreatmentErrorRateHigh"]
    finally:
        proc.terminate()
        proc.wait(10)


def _apply_merge_patch(target, patch):
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _apply_merge_patch(out.get(k), v)
    return out


def test_the_featureflag_merge_patch_turns_the_live_flag_set_into_the_new_one():
    """`cutover flags --featureflag` and the controller patch the FeatureFlag with a merge patch: keys
    the new flag set drops (a rollback's targeting) must go, not stay (a read-back then failed)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from cutover.ops.featureflag import merge_patch

    leaf = st.one_of(st.booleans(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=3))
    docs = st.recursive(leaf, lambda inner: st.dictionaries(st.sampled_from("abcde"), inner, max_size=4), max_leaves=12)

    @settings(max_examples=300, deadline=None)
    @given(
        st.dictionaries(st.sampled_from("abcde"), docs, max_size=4),
        st.dictionaries(st.sampled_from("abcde"), docs, max_size=4),
    )
    def holds(old, new):
        assert _apply_merge_patch(old, merge_patch(old, new)) == new

    holds()
    canary = {"flags": {"f": {"targeting": {"if": [1]}, "defaultVariant": "control"}}}
    shadow = {"flags": {"f": {"defaultVariant": "treatment"}}}
    assert merge_patch(canary, shadow) == {"flags": {"f": {"targeting": None, "defaultVariant": "treatment"}}}


def test_the_poll_path_acts_on_firing_rollback_alerts_read_from_real_prometheus(plan, flagfile, tmp_path):
    """The controller's fallback path (no Alertmanager): Prometheus's own firing alerts, read through
    `cutover.ops.prometheus`. A pending alert and one without action=rollback are left alone."""
    from cutover.ops.prometheus import firing_alerts

    from .promstack import prometheus

    rules = tmp_path / "rules.yml"
    rules.write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "name": "t",
                        "rules": [
                            {
                                "alert": "CutoverFallbackRateHigh",
                                "expr": "vector(1)",
                                "labels": {"severity": "critical", "action": "rollback", "rollback_level": "partial"},
                            },
                            {"alert": "CutoverNoted", "expr": "vector(1)", "labels": {"severity": "warning"}},
                            {
                                "alert": "CutoverPending",
                                "expr": "vector(1)",
                                "for": "1h",
                                "labels": {"severity": "critical", "action": "rollback"},
                            },
                        ],
                    }
                ]
            }
        )
    )
    ctrl = Controller(plan, "staging", flagfile, "s3cret", tmp_path / "rollbacks.jsonl")
    with prometheus(tmp_path, [], [rules]) as prom:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(firing_alerts(prom.url)) < 2:
            time.sleep(0.3)
        assert sorted(a["alertname"] for a in firing_alerts(prom.url)) == ["CutoverFallbackRateHigh", "CutoverNoted"]
        assert [a["alertname"] for a in firing_alerts(prom.url, action="rollback")] == ["CutoverFallbackRateHigh"]
        done = ctrl.poll(prom.url)
    assert [r.trigger for r in done] == ["CutoverFallbackRateHigh"]
    assert state_of(flagfile.read()).percentage == 25  # partial: ramp-50 back to the previous ramp's 25 %


def test_watch_figures_say_why_a_figure_is_missing(plan, tmp_path):
    """`cutover flags --watch` against real Prometheus with no cutover series: each figure says 'no
    data'; against a port nobody listens on, it says unavailable and why, and never raises."""
    from cutover.ops.watch import watch_figures

    from .promstack import free_port, prometheus

    with prometheus(tmp_path, []) as prom:
        line = next(watch_figures(plan, prom.url, 1))
    assert "error rate no data" in line and "recall p99 (s) no data" in line
    line = next(watch_figures(plan, f"http://127.0.0.1:{free_port()}", 1))
    assert "error rate unavailable (ConnectError)" in line
