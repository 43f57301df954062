"""The rollback controller, and the flag state that people and the controller change.

Alertmanager posts its webhooks here (a shared secret in the `X-Cutover-Secret` header or as a
bearer token); as a fallback the controller can poll Prometheus for firing alerts. A firing alert
labelled `action=rollback` rolls the flags back as its `rollback_level` says:

- immediate: the kill switch (everyone reads legacy);
- partial: the treatment percentage of the previous phase (half the current one if none is lower);
- full: the previous phase's flags.

Each rollback is recorded (time, trigger, flags before and after) in a JSON-lines log, counted in
`cutover_rollbacks_total`, shown in status, and never repeated within the plan's hold-down time.
One interface, two back ends: the flag file of the embedded gateway, or a patch of the FeatureFlag
object in a cluster (kubernetes Python client).
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cutover.plan.errors import CutoverError
from cutover.plan.model import Plan, Treatment
from cutover.render.flags import render_flags


# -- flag state ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlagState:
    """What the flags say, in the plan's terms: a phase, optional overrides, the kill switch."""

    phase: str
    kill_switch: bool = False
    percentage: float | None = None  # override of the phase's treatment percentage
    read_path: str | None = None  # override of the phase's treatment read path

    def describe(self, plan: Plan) -> str:
        f = plan.phase(self.phase).flags
        pct = f.treatment.percentage if self.percentage is None else self.percentage
        return (
            f"phase {self.phase}: treatment reads {self.read_path or f.read_path}, {pct:g} % "
            f"{'+ internal ' if f.treatment.internal else ''}treated, writes {f.write_mode}, "
            f"kill switch {'ON' if self.kill_switch else 'off'}"
        )


@dataclass(frozen=True)
class Change:
    """Who changed the flags and why, carried in the flag set's metadata (so in the FeatureFlag):
    the next tool (the Pulumi program, the gateway, on-call) reads the last change from the flags."""

    by: str  # controller | manual
    reason: str
    rollback_level: str = ""  # immediate | partial | full when the change is a rollback
    forced: bool = False
    at: float = field(default_factory=time.time)

    def metadata(self) -> dict:
        return {
            "changedAt": round(self.at, 3),
            "changedBy": self.by,
            "changeReason": self.reason,
            "rollbackLevel": self.rollback_level,
            "changeForced": self.forced,
        }


def render_state(plan: Plan, state: FlagState, stack: str, change: Change | None = None) -> dict:
    """The flag set for a state: the phase's flags with the overrides applied, one renderer for all."""
    p = plan.phase(state.phase)
    flags = p.flags
    if state.percentage is not None or state.read_path is not None:
        treatment = Treatment(
            internal=flags.treatment.internal,
            percentage=flags.treatment.percentage if state.percentage is None else state.percentage,
        )
        flags = flags.model_copy(update={"treatment": treatment, "read_path": state.read_path or flags.read_path})
        phases = [q if q.name != p.name else q.model_copy(update={"flags": flags}) for q in plan.phases]
        plan = plan.model_copy(update={"phases": phases})
    doc = render_flags(plan, state.phase, stack, kill_switch=state.kill_switch)
    doc["metadata"].update(
        {
            "percentageOverride": -1 if state.percentage is None else state.percentage,
            "readPathOverride": state.read_path or "",
            **(change.metadata() if change else {}),
        }
    )
    return doc


class FlagStateError(ValueError):
    """The flag set does not say which state it is in (not written by cutover, or damaged)."""


def state_of(doc: dict) -> FlagState:
    m = doc.get("metadata", {}) if isinstance(doc, dict) else None
    if not isinstance(m, dict) or not isinstance(m.get("phase"), str):
        raise FlagStateError("the flag set has no metadata.phase: not written by cutover, or damaged")
    pct = m.get("percentageOverride", -1)
    if pct not in (-1, None) and (isinstance(pct, bool) or not isinstance(pct, int | float)):
        raise FlagStateError("metadata.percentageOverride is not a number")
    return FlagState(
        m["phase"],
        bool(m.get("killSwitch")),
        None if pct in (-1, None) else float(pct),
        m.get("readPathOverride") or None,
    )


class FlagBackend(Protocol):
    def read(self) -> dict: ...
    def write(self, doc: dict) -> None: ...


class FlagFile:
    """The embedded default: the flagd flag file the gateway re-reads on change (atomic replace)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_bytes())
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
            raise FlagStateError(f"{self.path}: not a JSON flag set ({str(exc).splitlines()[0][:120]})") from None

    def write(self, doc: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.path)


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

    def read(self) -> dict:
        obj = self.api.get_namespaced_custom_object(
            "core.openfeature.dev", "v1beta1", self.namespace, "featureflags", self.name
        )
        return {"$schema": "https://flagd.dev/schema/v0/flags.json", **obj["spec"]["flagSpec"]}

    def write(self, doc: dict) -> None:
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
    patch: dict = {k: None for k in old if k not in new}
    for k, v in new.items():
        if old.get(k) != v:
            patch[k] = merge_patch(old[k], v) if k in old else v
    return patch


def apply_state(backend: FlagBackend, plan: Plan, state: FlagState, stack: str, change: Change | None = None) -> dict:
    """Write, then read back and verify; raises when the read-back differs."""
    doc = render_state(plan, state, stack, change)
    backend.write(doc)
    back = backend.read()
    if back.get("flags") != doc["flags"]:
        raise CutoverError(
            "the flags read back differ from what was written: another writer?",
            fix="read them (cutover flags without a change) and retry",
        )
    return back


# -- rollback decisions ----------------------------------------------------------------------------
def rolled_back(plan: Plan, state: FlagState, level: str) -> FlagState:
    if level == "immediate":
        return FlagState(state.phase, True, state.percentage, state.read_path)
    i = plan.index(state.phase)
    if level == "full":
        return FlagState(plan.phases[max(i - 1, 0)].name, state.kill_switch)
    current = plan.phase(state.phase).flags.treatment.percentage if state.percentage is None else state.percentage
    lower = [
        p.flags.treatment.percentage
        for p in plan.phases[:i]
        if p.flags.read_path == "memoryos" and p.flags.treatment.percentage < current
    ]
    return FlagState(state.phase, state.kill_switch, max(lower) if lower else current / 2, state.read_path)


@dataclass
class Rollback:
    at: float
    trigger: str
    level: str
    before: str
    after: str
    labels: dict = field(default_factory=dict)


def log_rollback(path: Path, rollback: Rollback) -> None:
    """One line of the rollback log (JSON lines): `cutover reconcile --after-rollback` reads the last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rollback.__dict__) + "\n")


def rollback_level(plan: Plan, before: FlagState, after: FlagState) -> str:
    """Which rollback a flag change is ("" when it is none): the kill switch turned on, a step back
    to an earlier phase, or less treatment (a lower percentage, or reads back to legacy)."""
    if after.kill_switch and not before.kill_switch:
        return "immediate"
    if plan.index(after.phase) < plan.index(before.phase):
        return "full"
    pct = lambda s: plan.phase(s.phase).flags.treatment.percentage if s.percentage is None else s.percentage  # noqa: E731
    path = lambda s: s.read_path or plan.phase(s.phase).flags.read_path  # noqa: E731
    if after.phase == before.phase and (pct(after) < pct(before) or (path(after) == "legacy" != path(before))):
        return "partial"
    return ""


class Controller:
    def __init__(
        self,
        plan: Plan,
        stack: str,
        backend: FlagBackend,
        secret: str,
        log_path: Path,
        metrics=None,
        on_rollback=None,
        clock=time.time,
    ):
        self.plan, self.stack, self.backend, self.secret = plan, stack, backend, secret
        self.log_path, self.metrics, self.on_rollback, self.clock = Path(log_path), metrics, on_rollback, clock
        self.lock = threading.Lock()
        self.history: list[Rollback] = []
        self.ignored: list[dict] = []

    def authorized(self, headers) -> bool:
        got = headers.get("x-cutover-secret") or (headers.get("authorization") or "").removeprefix("Bearer ")
        return bool(got) and hmac.compare_digest(got.encode(), self.secret.encode())

    def handle(self, payload: dict) -> list[Rollback]:
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

    def rollback(self, trigger: str, level: str, labels: dict | None = None) -> Rollback | None:
        with self.lock:
            now = self.clock()
            hold = self.plan.effective(state_of(self.backend.read()).phase).abort_triggers.hold_down
            if self.history and now - self.history[-1].at < hold:
                self.ignored.append({"at": now, "trigger": trigger, "reason": f"hold-down {hold:g} s"})
                return None
            before = state_of(self.backend.read())
            after = rolled_back(self.plan, before, level)
            apply_state(self.backend, self.plan, after, self.stack, Change("controller", trigger, level, at=now))
            r = Rollback(now, trigger, level, before.describe(self.plan), after.describe(self.plan), labels or {})
            self.history.append(r)
            log_rollback(self.log_path, r)
            if self.metrics is not None:
                self.metrics.labels(trigger=trigger, level=level).inc()
        if self.on_rollback:
            self.on_rollback(r)
        return r

    def poll(self, prometheus_url: str) -> list[Rollback]:
        """Fallback path: read firing alerts from Prometheus's API and act as on a webhook."""
        import httpx

        data = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        firing = [{"status": "firing", "labels": a["labels"]} for a in data if a.get("state") == "firing"]
        return self.handle({"alerts": firing})

    def status(self) -> dict:
        state = state_of(self.backend.read())
        return {
            "flags": state.__dict__,
            "described": state.describe(self.plan),
            "rollbacks": [r.__dict__ for r in self.history],
            "ignored": self.ignored[-20:],
        }


MAX_WEBHOOK_BYTES = 1_048_576  # Alertmanager sends a group of alerts; 1 MiB is thousands of them
MAX_WEBHOOK_DEPTH = 16


def webhook_payload(body: bytes) -> tuple[dict | None, str | None]:
    """(payload, None) for a well-formed Alertmanager webhook body, else (None, why, naming the field):
    an object whose `alerts` is a list of objects, each with a string `status` and string `labels`."""
    from cutover.store.records import NotFinite, json_problem, parse_int

    try:
        data = json.loads(body, parse_int=parse_int, parse_constant=NotFinite)
    except RecursionError:
        return None, f"malformed JSON: nested deeper than {MAX_WEBHOOK_DEPTH} levels"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"malformed JSON: {str(exc).splitlines()[0][:200]}"
    if not isinstance(data, dict):
        return None, "body: not a JSON object (an Alertmanager webhook payload)"
    bad = json_problem(data, MAX_WEBHOOK_DEPTH)
    if bad:
        return None, bad
    alerts = data.get("alerts", [])
    if not isinstance(alerts, list):
        return None, "alerts: not a list"
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            return None, f"alerts[{i}]: not an object"
        if not isinstance(alert.get("status", ""), str):
            return None, f"alerts[{i}].status: not a string"
        labels = alert.get("labels", {})
        if not isinstance(labels, dict):
            return None, f"alerts[{i}].labels: not an object"
        for k, v in labels.items():
            if not isinstance(v, str):
                return None, f"alerts[{i}].labels.{k}: not a string"
        level = labels.get("rollback_level")
        if level and level not in ("immediate", "partial", "full"):
            return None, f"alerts[{i}].labels.rollback_level: {level[:40]!r} is not immediate, partial or full"
    return data, None


def controller_app(ctrl: Controller):
    """Starlette app: POST /alertmanager (webhook), GET /status, GET /metrics."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    registry = CollectorRegistry()
    if ctrl.metrics is None:
        ctrl.metrics = Counter(
            ctrl.plan.metrics.rollbacks.removesuffix("_total"), "rollbacks", ["trigger", "level"], registry=registry
        )

    async def webhook(request: Request):
        if not ctrl.authorized(request.headers):
            return JSONResponse({"error": "missing or wrong shared secret"}, status_code=401)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_WEBHOOK_BYTES:
            return JSONResponse({"error": f"body over the limit of {MAX_WEBHOOK_BYTES} bytes"}, status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BYTES:
                return JSONResponse({"error": f"body over the limit of {MAX_WEBHOOK_BYTES} bytes"}, status_code=413)
        payload, why = webhook_payload(body)
        if payload is None:
            status = 400 if why and why.startswith("malformed") else 422
            return JSONResponse({"error": why}, status_code=status)
        try:
            done = await run_in_threadpool(ctrl.handle, payload)
        except FlagStateError as exc:  # the flags cannot be read: nothing was changed; Alertmanager retries
            return JSONResponse({"error": f"flags unreadable, no rollback applied: {exc}"}, status_code=503)
        return JSONResponse({"rollbacks": [r.__dict__ for r in done]})

    async def status(request: Request):
        return JSONResponse(await run_in_threadpool(ctrl.status))

    async def metrics(request: Request):
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[Route("/alertmanager", webhook, methods=["POST"]), Route("/status", status), Route("/metrics", metrics)]
    )
