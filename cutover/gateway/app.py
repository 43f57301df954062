"""The gateway's HTTP shells (Starlette): the public memory API and the admin API, and `serve()`.

Public (`--host`, default 127.0.0.1):
  POST   /v1/memories                 remember (create or replace); no `version` = next version
  GET    /v1/memories/{namespace}/{id}    (a namespace may hold "/"; an id may not)
  DELETE /v1/memories/{namespace}/{id}
  POST   /v1/recall                   {namespace, query, classes, tags_any, tags_all, text_contains,
                                       since, until, limit}
  GET    /healthz  /readyz  /metrics
  Headers: X-Agent-Id or X-Tenant-Id (the targeting key, required), X-Group (optional).
  Responses carry the answering path, whether it fell back, and the cohort (body and X-Cutover-* headers).

Admin (always 127.0.0.1, bearer token):
  GET /admin/status · GET|POST /admin/faults · POST /admin/outbox/requeue
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cutover.gateway.background import freeze_heap
from cutover.gateway.service import Gateway
from cutover.plan.yamlsrc import field_path
from cutover.store.records import RecallQuery, Record
from cutover.store.stores import StoreError

log = logging.getLogger("cutover.gateway")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _json_body(request: Request, limit: int) -> dict:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"request body of {length} bytes is over the limit of {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes")
    if not body:
        raise ApiError(400, "empty body: send a JSON object")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _validate(model, data: dict):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [f"{field_path(tuple(e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise ApiError(422, "; ".join(problems)) from None


def _identity(request: Request) -> tuple[str, str | None]:
    key = request.headers.get("x-agent-id") or request.headers.get("x-tenant-id")
    if not key:
        raise ApiError(400, "missing X-Agent-Id (or X-Tenant-Id) header: the agent or tenant id is the targeting key")
    if len(key) > 256:
        raise ApiError(400, "X-Agent-Id is longer than 256 characters")
    return key, request.headers.get("x-group")


def _answer(body: dict, info: dict, status: int = 200) -> JSONResponse:
    headers = {
        "X-Cutover-Path": info["path"],
        "X-Cutover-Cohort": info["cohort"],
        "X-Cutover-Fallback": "true" if info["fallback"] else "false",
    }
    return JSONResponse({**body, **info}, status_code=status, headers=headers)


def public_app(gw: Gateway) -> Starlette:
    limit = gw.plan.gateway.max_body_bytes

    async def remember(request: Request):
        key, group = _identity(request)
        data = await _json_body(request, limit)
        auto = "version" not in data
        rec = _validate(Record, data)
        decision = gw.decide(key, group)
        stored, info = await run_in_threadpool(gw.remember, rec, auto, decision)
        return _answer({"record": stored.dump()}, info)

    async def get(request: Request):
        key, group = _identity(request)
        ns, rid = request.path_params["namespace"], request.path_params["id"]
        rec, info = await run_in_threadpool(gw.get, ns, rid, gw.decide(key, group))
        if rec is None:
            return _answer({"error": f"no record {rid!r} in namespace {ns!r}", "record": None}, info, 404)
        return _answer({"record": rec.dump()}, info)

    async def delete(request: Request):
        key, group = _identity(request)
        ns, rid = request.path_params["namespace"], request.path_params["id"]
        found, info = await run_in_threadpool(gw.delete, ns, rid, gw.decide(key, group))
        if not found:
            return _answer({"error": f"no record {rid!r} in namespace {ns!r}", "deleted": False}, info, 404)
        return _answer({"deleted": True}, info)

    async def recall(request: Request):
        key, group = _identity(request)
        q = _validate(RecallQuery, await _json_body(request, limit))
        records, info = await run_in_threadpool(gw.recall, q, gw.decide(key, group))
        return _answer({"records": [r.dump() for r in records]}, info)

    async def healthz(request: Request):
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request):
        try:
            await run_in_threadpool(gw.legacy.ping)
        except StoreError as exc:
            return JSONResponse({"status": "not ready", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready", "phase": gw.phase})

    async def metrics(request: Request):
        await run_in_threadpool(gw.refresh_gauges)
        return Response(generate_latest(gw.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/v1/memories", remember, methods=["POST"]),
        Route("/v1/memories/{namespace:path}/{id}", get, methods=["GET"]),
        Route("/v1/memories/{namespace:path}/{id}", delete, methods=["DELETE"]),
        Route("/v1/recall", recall, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes, exception_handlers=_handlers())


def _handlers() -> dict:
    async def api_error(request, exc: ApiError):
        return _error(exc.status, exc.message)

    async def store_error(request, exc: StoreError):
        return _error(503, f"store unavailable: {exc}")

    async def http_error(request, exc: HTTPException):
        return _error(exc.status_code, exc.detail or "error")

    return {ApiError: api_error, StoreError: store_error, HTTPException: http_error}


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store: str = Field(pattern="^(legacy|memoryos)$")
    latency_ms: float = Field(default=0, ge=0, le=60_000)
    error_rate: float = Field(default=0, ge=0, le=1)
    outage: bool = False


def admin_app(gw: Gateway, token: str) -> Starlette:
    def check(request: Request) -> None:
        got = request.headers.get("authorization", "")
        if not (got.startswith("Bearer ") and hmac.compare_digest(got[7:].encode(), token.encode())):
            raise ApiError(401, "missing or wrong bearer token")

    async def status(request: Request):
        check(request)
        return JSONResponse(await run_in_threadpool(gw.status))

    async def faults(request: Request):
        check(request)
        if request.method == "POST":
            f = _validate(Faults, await _json_body(request, 4096))
            gw.set_fault(f.store, f.latency_ms, f.error_rate, f.outage)
        return JSONResponse({n: s.state() for n, s in gw.stores.items()})

    async def requeue(request: Request):
        check(request)
        return JSONResponse({"requeued": await run_in_threadpool(gw.requeue_dead)})

    async def drift_restart(request: Request):
        check(request)
        return JSONResponse(await run_in_threadpool(gw.restart_drift_window))

    routes = [
        Route("/admin/status", status),
        Route("/admin/drift/restart", drift_restart, methods=["POST"]),
        Route("/admin/faults", faults, methods=["GET", "POST"]),
        Route("/admin/outbox/requeue", requeue, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers=_handlers())


def admin_token(data_dir: Path) -> tuple[str, str]:
    """The admin token: $CUTOVER_ADMIN_TOKEN, $CUTOVER_ADMIN_TOKEN_FILE, or one generated into data_dir."""
    if os.environ.get("CUTOVER_ADMIN_TOKEN"):
        return os.environ["CUTOVER_ADMIN_TOKEN"], "$CUTOVER_ADMIN_TOKEN"
    path = Path(os.environ.get("CUTOVER_ADMIN_TOKEN_FILE") or data_dir / "admin-token")
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip(), str(path)


def run(gw: Gateway, host: str, port: int, admin_port: int, token: str, drain_s: float = 30.0) -> None:
    """Serve until SIGINT/SIGTERM; then finish open requests, let the outbox drain for up to `drain_s`
    (what is left stays on disk for the next start), and close."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # one handler stops both servers (uvicorn's own would stop one and re-raise)
            yield

    freeze_heap()
    servers = [
        Server(uvicorn.Config(public_app(gw), host=host, port=port, log_level="warning", access_log=False)),
        Server(
            uvicorn.Config(
                admin_app(gw, token), host="127.0.0.1", port=admin_port, log_level="warning", access_log=False
            )
        ),
    ]

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for s in servers:
                s.force_exit = s.should_exit  # a second signal: stop waiting for open requests
                s.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await asyncio.gather(*(s.serve() for s in servers))

    try:
        asyncio.run(main())
        left = gw.drain(drain_s)
        if left:
            log.warning(
                "outbox: %d mirror writes still waiting after %.0f s; they drain on the next start", left, drain_s
            )
    finally:
        gw.close()
