"""The rollback controller: Alertmanager's abort alerts in, one level of rollback out.

Alertmanager posts its webhooks to it (`cutover.ops.webhook`: a shared secret in the
`X-Cutover-Secret` header or as a bearer token); as a fallback the controller can poll Prometheus for
firing alerts. A firing alert labelled `action=rollback` rolls the flags back as its `rollback_level`
says (immediate, partial or full: `cutover.flags.change`), through the same `change()` as
`cutover flags`.

Each rollback is recorded (time, trigger, flags before and after) in a JSON-lines log, counted in
`cutover_rollbacks_total`, shown in status, and never repeated within the plan's hold-down time.
One interface, two back ends: the flag file of the embedded gateway (`cutover.flags.backend`), or a
patch of the FeatureFlag object in a cluster (`cutover.ops.featureflag`).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from cutover.flags.backend import FlagBackend
from cutover.flags.change import Rollback, change, log_rollback, rolled_back
from cutover.flags.state import state_of
from cutover.plan.model import Plan

if TYPE_CHECKING:
    from prometheus_client import Counter


class Ignored(TypedDict):
    """An alert the hold-down kept from rolling back again."""

    at: float
    trigger: str
    reason: str


class ControllerStatus(TypedDict):
    """GET /status: the flags now, the rollbacks done and the last alerts ignored."""

    flags: dict[str, Any]
    described: str
    rollbacks: list[dict[str, Any]]
    ignored: list[Ignored]


class Controller:
    def __init__(
        self,
        plan: Plan,
        stack: str,
        backend: FlagBackend,
        secret: str,
        log_path: Path,
        metrics: Counter | None = None,
        on_rollback: Callable[[Rollback], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan, self.stack, self.backend, self.secret = plan, stack, backend, secret
        self.log_path, self.metrics, self.on_rollback, self.clock = Path(log_path), metrics, on_rollback, clock
        self.lock = threading.Lock()
        self.history: list[Rollback] = []
        self.ignored: list[Ignored] = []

    def authorized(self, headers: Mapping[str, str]) -> bool:
        got = headers.get("x-cutover-secret") or (headers.get("authorization") or "").removeprefix("Bearer ")
        return bool(got) and hmac.compare_digest(got.encode(), self.secret.encode())

    def handle(self, payload: dict[str, Any]) -> list[Rollback]:
        """An Alertmanager webhook payload (version 4): act on firing rollback alerts."""
        done = []
        for alert in payload.get("alerts", []):
            labels = alert.get("labels", {})
            if alert.get("status") != "firing" or labels.get("action") != "rollback":
                continue
            if labels.get("severity") != "critical":
                continue
            r = self.rollback(
                labels.get("alertname", "unknown"),
                labels.get("rollback_level") or self.plan.abort_triggers.rollback,
                labels,
            )
            if r:
                done.append(r)
        return done

    def rollback(self, trigger: str, level: str, labels: dict[str, str] | None = None) -> Rollback | None:
        with self.lock:
            now = self.clock()
            hold = self.plan.effective(state_of(self.backend.read()).phase).abort_triggers.hold_down
            if self.history and now - self.history[-1].at < hold:
                self.ignored.append({"at": now, "trigger": trigger, "reason": f"hold-down {hold:g} s"})
                return None
            before = state_of(self.backend.read())
            after = rolled_back(self.plan, before, level)
            applied = change(
                self.backend, self.plan, self.stack, before, after, by="controller", reason=trigger, level=level, at=now
            )
            r = applied.rollback(self.plan, trigger, labels or {})
            self.history.append(r)
            log_rollback(self.log_path, r)
            if self.metrics is not None:
                self.metrics.labels(trigger=trigger, level=level).inc()
        if self.on_rollback:
            self.on_rollback(r)
        return r

    def poll(self, prometheus_url: str) -> list[Rollback]:
        """Fallback path: read firing alerts from Prometheus's API and act as on a webhook."""
        from cutover.ops.prometheus import firing_alerts

        return self.handle(
            {"alerts": [{"status": "firing", "labels": labels} for labels in firing_alerts(prometheus_url)]}
        )

    def status(self) -> ControllerStatus:
        state = state_of(self.backend.read())
        return {
            "flags": state.__dict__,
            "described": state.describe(self.plan),
            "rollbacks": [r.__dict__ for r in self.history],
            "ignored": self.ignored[-20:],
        }
