"""The rollback controller: Alertmanager's abort alerts in, one level of rollback out.

Alertmanager posts its webhooks to it (`cutover.ops.webhook`: a shared secret in the
`X-Cutover-Secret` header or as a bearer token); as a fallback the controller can poll Prometheus for
firing alerts. A firing alert labelled `action=rollback` rolls the flags back as its `rollback_level`
says (immediate, partial or full: `cutover.flags.change`), through the same `change()` as
`cutover flags`.

Each rollback is recorded (time, trigger, flags before and after) in a JSON-lines log, counted in
`cutover_rollbacks_total`, shown in status, and never repeated within the plan's hold-down time.
A write refused because the flags changed since the controller read them (`FlagsChangedError`: on-call
changed them meanwhile) is decided once more from the flags as they are now.
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

from cutover.flags.backend import FlagBackend, Snapshot
from cutover.flags.change import Applied, Rollback, as_far_back, change, log_rollback, rolled_back
from cutover.flags.state import FlagState, state_of
from cutover.plan.errors import FlagsChangedError
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
            seen = self.backend.read_versioned()
            before = state_of(seen.flags())
            if self._held_down(now, trigger, before):
                return None
            after = rolled_back(self.plan, before, level)
            try:
                applied = self._change(seen, before, after, trigger, level, now)
            except FlagsChangedError:
                # Another writer (on-call, a second controller) changed the flags since the read:
                # decide once more from what they say now. A rollback still needed happens; one that
                # the other change already made (or went further than) does not happen twice.
                seen = self.backend.read_versioned()
                current = state_of(seen.flags())
                if self._held_down(now, trigger, current):
                    return None
                if as_far_back(self.plan, current, after):
                    self.ignored.append({"at": now, "trigger": trigger, "reason": "flags changed concurrently"})
                    return None
                applied = self._change(seen, current, rolled_back(self.plan, current, level), trigger, level, now)
            r = applied.rollback(self.plan, trigger, labels or {})
            self.history.append(r)
            log_rollback(self.log_path, r)
            if self.metrics is not None:
                self.metrics.labels(trigger=trigger, level=level).inc()
        if self.on_rollback:
            self.on_rollback(r)
        return r

    def _held_down(self, now: float, trigger: str, state: FlagState) -> bool:
        """Whether the last rollback is more recent than the hold-down of the phase in force (the
        alert is then ignored, and listed as such)."""
        hold = self.plan.effective(state.phase).abort_triggers.hold_down
        if self.history and now - self.history[-1].at < hold:
            self.ignored.append({"at": now, "trigger": trigger, "reason": f"hold-down {hold:g} s"})
            return True
        return False

    def _change(
        self, seen: Snapshot, before: FlagState, after: FlagState, trigger: str, level: str, now: float
    ) -> Applied:
        return change(
            self.backend, self.plan, self.stack, before, after,
            seen=seen, by="controller", reason=trigger, level=level, at=now,
        )  # fmt: skip

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
