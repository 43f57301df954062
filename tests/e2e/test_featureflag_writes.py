"""The FeatureFlag's compare-and-swap on a real kube-apiserver: two writers read the same
resourceVersion; the first patch lands, the second is refused by the server (409 Conflict) and
raised as FlagsChangedError naming the first change; the object keeps the first writer's flags."""

from __future__ import annotations

import pytest

from cutover.flags.change import change
from cutover.flags.state import FlagState, render_state, state_of
from cutover.plan.errors import FlagsChangedError
from cutover.plan.model import load_plan

from ..conftest import ROOT
from ..kubecluster import KubeError

pytestmark = pytest.mark.e2e

PLAN = load_plan(ROOT / "rollout.yaml")
API = "core.openfeature.dev/v1beta1"
NAMESPACE = "default"


@pytest.fixture
def featureflag(cluster, monkeypatch):
    """A FeatureFlag holding the ramp-50 flag set, and a factory of writers (FeatureFlagObject) that
    reach it through the cluster's kubeconfig."""
    import kubernetes.config
    import kubernetes.config.kube_config

    # the client reads $KUBECONFIG once, at import: point both places it looks at this cluster
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    monkeypatch.setattr(kubernetes.config, "KUBE_CONFIG_DEFAULT_LOCATION", cluster.kubeconfig)
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", cluster.kubeconfig)
    name = "cas-flags"
    spec = {k: v for k, v in render_state(PLAN, FlagState("ramp-50"), "staging").items() if k != "$schema"}
    obj = {"apiVersion": API, "kind": "FeatureFlag", "metadata": {"name": name, "namespace": NAMESPACE}}
    cluster.apply({**obj, "spec": {"flagSpec": spec}})
    yield name
    cluster.delete(API, "FeatureFlag", name, NAMESPACE)


def writer(name: str):
    from cutover.ops.featureflag import FeatureFlagObject

    return FeatureFlagObject(name, NAMESPACE)


def test_of_two_writers_from_the_same_resource_version_the_second_is_refused(cluster, featureflag):
    a, b = writer(featureflag), writer(featureflag)
    seen_a, seen_b = a.read_versioned(), b.read_versioned()
    assert (
        seen_a.version
        == seen_b.version
        == cluster.get(API, "FeatureFlag", featureflag, NAMESPACE)["metadata"]["resourceVersion"]
    )
    before = state_of(seen_a.flags())
    first = change(
        a, PLAN, "staging", before, FlagState("ramp-50", kill_switch=True), seen=seen_a, by="manual", reason="INC-7"
    )
    assert first.stored.version != seen_a.version
    with pytest.raises(FlagsChangedError) as refused:
        change(
            b, PLAN, "staging", before, FlagState("ramp-50", percentage=40),
            seen=seen_b, by="controller", reason="CutoverDriftHigh", level="partial",
        )  # fmt: skip
    assert "by manual" in str(refused.value) and "INC-7" in str(refused.value)
    assert f"`cutover flags --featureflag {NAMESPACE}/{featureflag}`" in (refused.value.fix or "")
    live = cluster.get(API, "FeatureFlag", featureflag, NAMESPACE)
    assert live["metadata"]["resourceVersion"] == first.stored.version
    assert live["spec"]["flagSpec"] == {k: v for k, v in first.doc.items() if k != "$schema"}
    assert state_of(b.read()) == FlagState("ramp-50", kill_switch=True)
    # writer B, having read again, writes
    again = b.read_versioned()
    change(b, PLAN, "staging", state_of(again.flags()), FlagState("ramp-50", True, 40), seen=again, by="controller")
    assert state_of(a.read()) == FlagState("ramp-50", True, 40)


def test_the_server_refuses_a_merge_patch_naming_a_stale_resource_version(cluster, featureflag):
    """What the back end relies on: a merge patch carrying metadata.resourceVersion is refused with
    409 Conflict once the object changed (no client-side check decides it)."""
    stale = cluster.get(API, "FeatureFlag", featureflag, NAMESPACE)["metadata"]["resourceVersion"]
    w = writer(featureflag)
    seen = w.read_versioned()
    change(w, PLAN, "staging", state_of(seen.flags()), FlagState("ramp-25"), seen=seen, by="manual")
    path = cluster.path(API, "FeatureFlag", featureflag, NAMESPACE)
    patch = {"metadata": {"resourceVersion": stale}, "spec": {"flagSpec": {"metadata": {"changedBy": "stale"}}}}
    with pytest.raises(KubeError) as conflict:
        cluster.request("PATCH", path, patch, "application/merge-patch+json")
    assert conflict.value.status == 409
    assert w.read()["metadata"]["changedBy"] == "manual"
