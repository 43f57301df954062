"""The controller's HTTP side: Alertmanager's webhook payload checked field by field
(`webhook_payload`), and the Starlette app that serves it (`controller_app`: POST /alertmanager,
GET /status, GET /metrics)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cutover.flags.change import ROLLBACK_LEVELS
from cutover.flags.state import FlagStateError
from cutover.ops.controller import Controller
from cutover.plan.errors import FlagsChangedError

if TYPE_CHECKING:
    from starlette.applications import Starlette

MAX_WEBHOOK_BYTES = 1_048_576  # Alertmanager sends a group of alerts; 1 MiB is thousands of them
MAX_WEBHOOK_DEPTH = 16
_LEVELS = ", ".join(ROLLBACK_LEVELS[:-1]) + f" or {ROLLBACK_LEVELS[-1]}"  # immediate, partial or full


def webhook_payload(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
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
        if level and level not in ROLLBACK_LEVELS:
            return None, f"alerts[{i}].labels.rollback_level: {level[:40]!r} is not {_LEVELS}"
    return data, None


def controller_app(ctrl: Controller) -> Starlette:
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

    async def webhook(request: Request) -> Response:
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
        except FlagsChangedError as exc:  # changed twice under the controller's writes: Alertmanager retries
            return JSONResponse({"error": f"no rollback applied: {exc}"}, status_code=503)
        return JSONResponse({"rollbacks": [r.__dict__ for r in done]})

    async def status(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(ctrl.status))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[Route("/alertmanager", webhook, methods=["POST"]), Route("/status", status), Route("/metrics", metrics)]
    )
