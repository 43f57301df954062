"""What the Pulumi program learns from the live flags before it changes them: the FeatureFlag as the
cluster holds it, read with the same kubeconfig as the provider (KUBECONFIG, or in a pod its service
account). A rollback recorded there (by the controller or `cutover flags`) is never silently undone:
a `pulumi up` that would change those flags is refused until the stack acknowledges that rollback;
and the phase's start recorded there is what the gate's minimum duration runs from."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cutover.flags.state import FlagStateError, phase_since, state_of
from cutover.plan.errors import CutoverError
from cutover.plan.stacks import PROJECT

LiveReader = Callable[[str, str], dict[str, Any] | None]
"""reader(namespace, name): the live flag set (the FeatureFlag's flagSpec), or None when there is none."""


def read_featureflag(namespace: str, name: str) -> dict[str, Any] | None:
    """The live FeatureFlag's flag set through the Kubernetes API; None when the object does not exist."""
    from kubernetes.client.exceptions import ApiException

    from cutover.ops.featureflag import FeatureFlagObject

    try:
        return FeatureFlagObject(name, namespace).read()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise CutoverError(
            f"cannot read the live FeatureFlag {namespace}/{name}: HTTP {exc.status} {exc.reason}",
            fix="pulumi up changes flags only after reading them: check the kubeconfig and the cluster",
        ) from None
    except OSError as exc:  # the API server unreachable (urllib3 wraps it in an OSError subclass)
        raise CutoverError(
            f"cannot read the live FeatureFlag {namespace}/{name}: {exc}",
            fix="pulumi up changes flags only after reading them: check the kubeconfig and the cluster",
        ) from None


@dataclass(frozen=True)
class LiveFlags:
    doc: dict[str, Any] | None

    @property
    def meta(self) -> dict[str, Any]:
        m = (self.doc or {}).get("metadata")
        return m if isinstance(m, dict) else {}

    @property
    def phase(self) -> str | None:
        try:
            return state_of(self.doc).phase if self.doc is not None else None
        except FlagStateError:
            return None

    @property
    def phase_since(self) -> float | None:
        return phase_since(self.doc)

    def active_rollback(self) -> str | None:
        """The live flags' last change when it is a rollback the program did not make: its changedAt."""
        m = self.meta
        if m.get("rollbackLevel") and m.get("changedBy") != "pulumi" and m.get("changedAt") is not None:
            return str(m["changedAt"])
        return None

    def guard(self, desired: dict[str, Any], acknowledged: str | None) -> None:
        """Refuse to write `desired` over a rollback the stack has not acknowledged (when the flags differ)."""
        at = self.active_rollback()
        if at is None or self.doc is None or desired.get("flags") == self.doc.get("flags") or acknowledged == at:
            return
        m = self.meta
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(at)))
        raise CutoverError(
            f"the live flags hold a rollback ({m.get('rollbackLevel')}, by {m.get('changedBy')}, {when}: "
            f"{m.get('changeReason') or 'no reason given'}), and this pulumi up would overwrite it",
            fix="to keep it, set the stack to the state it rolled back to (phase, killSwitch); to overwrite it, "
            f"acknowledge it: pulumi config set {PROJECT}:acknowledgeRollback {at}",
        )

    def since_for(self, phase: str, now: float) -> float:
        """The phase start the program records: the live one while the phase stays, else now."""
        live = self.phase_since
        return live if live is not None and self.phase == phase else now
