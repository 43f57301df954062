"""The evidence store in a cluster (`configmap:NAMESPACE`) on a real kube-apiserver: what the nightly
CronJob adds there (`cutover analyze --evidence-store`), `cutover gate --evidence configmap:NS` reads,
with the gate's rules (stack, plan digest) applied to it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cutover.judge.evidence import new_evidence
from cutover.ops.evidencestore import LABEL, load_store, save
from cutover.plan.errors import EvidenceError
from cutover.plan.model import load_plan

from ..conftest import ROOT

pytestmark = pytest.mark.e2e
PLAN = load_plan(ROOT / "rollout.yaml")


def test_evidence_in_configmaps_opens_the_gate_the_cli_checks(cluster, monkeypatch):
    ns = "evidence-e2e"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    store = f"configmap:{ns}"
    assert load_store(store) == []

    def gate() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "cutover.cli", "gate", "--phase", "canary", "--stack", "staging"]
        env = {**os.environ, "KUBECONFIG": cluster.kubeconfig}
        return subprocess.run([*argv, "--evidence", store], env=env, capture_output=True, text=True, timeout=60)

    closed = gate()
    assert closed.returncode == 1 and "no drift evidence from phase 'shadow'" in closed.stderr
    other = new_evidence("drift", "shadow", "PROMOTE", stack="production", plan_digest=PLAN.digest())
    where = save(store, other)
    assert where.startswith(f"configmap {ns}/cutover-evidence-shadow-drift-")
    still = gate()
    assert still.returncode == 1 and "for stack 'production', not 'staging'" in still.stderr
    mine = new_evidence("drift", "shadow", "PROMOTE", stack="staging", plan_digest=PLAN.digest())
    save(store, mine)
    opened = gate()
    assert opened.returncode == 0 and "gate into 'canary': OPEN" in opened.stdout, opened.stdout + opened.stderr
    items = load_store(store)
    assert sorted(e.stack or "" for e in items) == ["production", "staging"]
    assert all(e.source and e.source.startswith(f"configmap {ns}/") for e in items)
    # a ConfigMap labelled as evidence without the file is refused with its name, not skipped
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "broken", "namespace": ns, "labels": {LABEL: "true"}},
            "data": {"other": "x"},
        }
    )
    with pytest.raises(EvidenceError, match=r"no evidence\.json key"):
        load_store(store)
