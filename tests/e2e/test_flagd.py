"""The gateway against the real flagd daemon (`make engines`) in RPC mode, as beside the OpenFeature
Operator's sidecar: flagd serves the rendered flag file (its file sync), the split and a kill switch
flip reach the gateway over flagd's gRPC protocol and event stream. The Kubernetes sync (flagd
watching the FeatureFlag that `pulumi up` writes) is in test_pulumi_up.py."""

from __future__ import annotations

import json
import time

import pytest

from cutover.flags.document import render_flags
from cutover.plan.model import load_plan

from ..flagdproc import Flagd
from ..gatewayproc import GatewayProcess, project_copy

pytestmark = pytest.mark.e2e


def test_flags_from_flagd_over_rpc_and_a_flip_reaches_the_gateway(tmp_path):
    project = project_copy(tmp_path)
    plan = load_plan(project / "rollout.yaml")
    flag_file = tmp_path / "flags.json"
    flag_file.write_text(json.dumps(render_flags(plan, "ramp-50", "staging")))
    flagd = Flagd(f"file:{flag_file}", tmp_path).start()
    data = tmp_path / "data"
    data.mkdir()
    g = GatewayProcess(project, data, None)  # no --phase: the flags name it
    try:
        g.start(None, "--flagd", flagd.address)
        answers = [g.client(f"agent-{i}").post("/v1/recall", json={"namespace": "n"}) for i in range(200)]
        assert {r.headers["X-Cutover-Cohort"] for r in answers} == {"control", "treatment"}
        treated = sum(r.headers["X-Cutover-Cohort"] == "treatment" for r in answers)
        assert 60 <= treated <= 140, treated  # 50 % of 200 keys: 100 +- 40 is beyond 5 sigma
        assert {r.headers["X-Cutover-Phase"] for r in answers} == {"ramp-50"}
        status = g.status()
        assert status["flags"]["file"] == f"flagd://{flagd.address}" and status["phase"] == "ramp-50"
        # the gateway and flagd itself put the same agent in the same cohort (the salted targeting key)
        for i in range(40):
            direct = flagd.evaluate(plan.flag_keys.read_path, targetingKey=plan.targeting.bucketing_key(f"agent-{i}"))
            assert direct["variant"] == answers[i].headers["X-Cutover-Cohort"], (i, direct)
        flag_file.write_text(json.dumps(render_flags(plan, "ramp-50", "staging", kill_switch=True)))
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20 and not g.status()["flags"]["kill_switch"]:
            time.sleep(0.05)
        seconds = time.monotonic() - t0
        print(f"kill switch in the flag file -> flagd (file sync) -> gateway: {seconds:.2f} s")
        assert g.status()["flags"]["kill_switch"] is True, flagd.log()
        paths = {g.client(f"agent-{i}").post("/v1/recall", json={"namespace": "n"}).json()["path"] for i in range(60)}
        assert paths == {"legacy"}
    finally:
        g.stop()
        flagd.stop()
