"""The flags in a cluster: the FeatureFlag object the OpenFeature Operator feeds to flagd, read and
written as a `cutover.flags.backend.FlagBackend` (kubernetes Python client, JSON merge patch)."""

from __future__ import annotations

from typing import Any

from cutover.flags.document import FLAGD_SCHEMA_URL
from cutover.plan.errors import CutoverError


class FeatureFlagObject:
    """In a cluster: the FeatureFlag object the OpenFeature Operator feeds to flagd (merge patch)."""

    def __init__(self, name: str, namespace: str):
        try:
            from kubernetes import client, config
        except ModuleNotFoundError:
            raise CutoverError("the Kubernetes client is not installed", fix="pip install 'cutover[kube]'") from None
        try:
            config.load_config()
        except config.ConfigException as exc:
            raise CutoverError(
                f"no Kubernetes configuration: {exc}", fix="set KUBECONFIG, or run in a pod with a service account"
            ) from None
        self.api, self.name, self.namespace = client.CustomObjectsApi(), name, namespace

    def read(self) -> dict[str, Any]:
        obj = self.api.get_namespaced_custom_object(
            "core.openfeature.dev", "v1beta1", self.namespace, "featureflags", self.name
        )
        return {"$schema": FLAGD_SCHEMA_URL, **obj["spec"]["flagSpec"]}

    def write(self, doc: dict[str, Any]) -> None:
        """A JSON merge patch (what the client sends for custom objects) from the live flag set to
        `doc`: a key `doc` no longer has (a targeting that a rollback drops) is patched to null, or
        the merge would keep it."""
        live = {k: v for k, v in self.read().items() if k != "$schema"}
        spec = {k: v for k, v in doc.items() if k != "$schema"}
        self.api.patch_namespaced_custom_object(
            "core.openfeature.dev", "v1beta1", self.namespace, "featureflags", self.name,
            {"spec": {"flagSpec": merge_patch(live, spec)}},
        )  # fmt: skip


def merge_patch(old: object, new: object) -> object:
    """The RFC 7386 merge patch that turns `old` into `new` (objects compared key by key; anything
    else replaced whole)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[object, object] = {k: None for k in old if k not in new}
    for k, v in new.items():
        if old.get(k) != v:
            patch[k] = merge_patch(old[k], v) if k in old else v
    return patch
