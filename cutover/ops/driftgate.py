"""Reading the gateway's drift gate over HTTP, for `cutover evidence drift`: from a running gateway's
admin API (`GET /admin/status`, bearer token), or from the drift metrics Prometheus scrapes off the
gateways. Each read is one `DriftReading` (cutover.judge.driftgate); a source that does not answer,
or refuses the token, is a CutoverError (exit 2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from cutover.judge.driftgate import DriftReading, from_prometheus, from_status
from cutover.ops import prometheus
from cutover.plan.errors import CutoverError
from cutover.plan.metrics import name
from cutover.plan.model import Plan
from cutover.render.promql import PromQL

TIMEOUT_S = 10


def admin_status(url: str, token: str) -> dict[str, Any]:
    """`GET /admin/status` of the gateway's admin API."""
    base = url.rstrip("/")
    try:
        r = httpx.get(f"{base}/admin/status", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise CutoverError(
            f"cannot reach the gateway's admin API at {base}: {exc or type(exc).__name__}",
            fix="--admin is the admin listener (cutover serve --admin-port, on 127.0.0.1 of the gateway's host; "
            "in a cluster: kubectl port-forward)",
        ) from None
    if r.status_code == 401:
        raise CutoverError(
            f"the gateway's admin API at {base} refused the token (401)",
            fix="pass the token the gateway was started with: --token-file FILE or $CUTOVER_ADMIN_TOKEN",
        )
    if r.status_code != 200:
        raise CutoverError(f"the gateway's admin API at {base} answered {r.status_code}: {r.text[:200]}")
    try:
        status = r.json()
    except ValueError:
        raise CutoverError(f"the gateway's admin API at {base} did not answer JSON") from None
    if not isinstance(status, dict):
        raise CutoverError(f"the gateway's admin API at {base} did not answer a JSON object")
    return status


def read_admin(url: str, token: str, plan: Plan, phase: str | None = None) -> DriftReading:
    return from_status(admin_status(url, token), plan, url.rstrip("/"), phase)


def prometheus_queries(plan: Plan, stack: str, selectors: Sequence[str] = ()) -> dict[str, str]:
    """The PromQL of each figure: the drift-ready gauge (lowest over the gateways), the parity drift
    histogram's count and sum (summed over the gateways), and the phase-info gauge of the stack."""
    q = PromQL(plan, extra=selectors)
    return {
        "ready": f"min({q.series('drift_ready')})",
        "samples": f"sum({q.series('drift', '_count', measure='parity')})",
        "sum": f"sum({q.series('drift', '_sum', measure='parity')})",
        "phase": f"max by (phase) ({q.series('phase_info', stack=stack)}) == 1",
    }


def metric_names(plan: Plan) -> list[str]:
    """The series `--prometheus` reads (the plan's metric names)."""
    drift = name(plan, "drift")
    return [name(plan, "drift_ready"), f"{drift}_count", f"{drift}_sum", name(plan, "phase_info")]


def _scalar(url: str, expr: str) -> float | None:
    result = _query(url, expr)
    return float(result[0]["value"][1]) if result else None


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    try:
        return prometheus.query(url, expr)
    except httpx.HTTPStatusError as exc:
        raise CutoverError(
            f"Prometheus at {url} refused the query {expr!r} ({exc.response.status_code}): {exc.response.text[:200]}",
            fix='check --selector: label matchers such as namespace="memory-staging"',
        ) from None
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise CutoverError(
            f"cannot query Prometheus at {url}: {exc or type(exc).__name__}",
            fix="--prometheus is the Prometheus server's base URL, e.g. http://prometheus:9090",
        ) from None


def read_prometheus(
    url: str, plan: Plan, stack: str, phase: str | None = None, selectors: Sequence[str] = ()
) -> DriftReading:
    base = url.rstrip("/")
    queries = prometheus_queries(plan, stack, selectors)
    phases = sorted({str(s["metric"].get("phase")) for s in _query(base, queries["phase"])})
    reported = phases[0] if len(phases) == 1 else None
    figures = {k: _scalar(base, queries[k]) for k in ("ready", "samples", "sum")}
    reading = from_prometheus(figures, plan, base, phase, reported)
    return replace(reading, figures={**reading.figures, "queries": queries})
