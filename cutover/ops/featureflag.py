"""The flags in a cluster: the FeatureFlag object the OpenFeature Operator feeds to flagd, read and
written as a `cutover.flags.backend.FlagBackend` (kubernetes Python client, JSON merge patch).

The version of the flags is the object's `metadata.resourceVersion`: every patch carries the one
it was computed from, and the API server refuses it (409 Conflict) when the object changed since,
which `write` raises as FlagsChangedError naming the change recorded meanwhile."""

from __future__ import annotations

from typing import Any

from cutover.flags.backend import Snapshot, changed_since
from cutover.flags.document import FLAGD_SCHEMA_URL
from cutover.plan.errors import CutoverError

GROUP, VERSION, PLURAL = "core.openfeature.dev", "v1beta1", "featureflags"


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
        return self.read_versioned().flags()

    def read_versioned(self) -> Snapshot:
        return self._snapshot(self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name))

    @staticmethod
    def _snapshot(obj: dict[str, Any]) -> Snapshot:
        return Snapshot(
            str(obj["metadata"]["resourceVersion"]), {"$schema": FLAGD_SCHEMA_URL, **obj["spec"]["flagSpec"]}
        )

    def write(self, doc: dict[str, Any], expect: str | None = None) -> Snapshot:
        """A JSON merge patch (what the client sends for custom objects) from the live flag set to
        `doc`: a key `doc` no longer has (a targeting that a rollback drops) is patched to null, or
        the merge would keep it. The patch names the resourceVersion the caller read (`expect`, else
        the one just read), so the server refuses it (409) when the object changed since."""
        from kubernetes.client.exceptions import ApiException

        live = self.read_versioned()  # the server, not this read, decides: the patch carries `expect`
        old = {k: v for k, v in live.flags().items() if k != "$schema"}
        spec = {k: v for k, v in doc.items() if k != "$schema"}
        patch = {"metadata": {"resourceVersion": expect or live.version}, "spec": {"flagSpec": merge_patch(old, spec)}}
        try:
            obj = self.api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, patch)
        except ApiException as exc:
            if exc.status == 409:  # the object's resourceVersion is no longer the one named
                raise changed_since(self.read(), self.show) from None
            raise
        return self._snapshot(obj)  # the object as the server stored it

    @property
    def show(self) -> str:
        return f"--featureflag {self.namespace}/{self.name}"


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
