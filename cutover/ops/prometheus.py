"""Prometheus's HTTP API, the three reads the kit makes: an instant query, a range query and the
firing alerts (the controller's poll, the rehearsal's drills and `cutover flags --watch` share them)."""

from __future__ import annotations

from typing import Any, cast

import httpx

FIRING = "firing"


def _data(url: str, path: str, params: dict[str, str | float] | None = None) -> Any:
    r = httpx.get(f"{url.rstrip('/')}{path}", params=params, timeout=5)
    r.raise_for_status()
    return r.json()["data"]


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """An instant vector: [{"metric": {...}, "value": [ts, "v"]}, ...]."""
    return cast(list[dict[str, Any]], _data(url, "/api/v1/query", {"query": expr})["result"])


def query_range(url: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """A range vector: [{"metric": {...}, "values": [[ts, "v"], ...]}, ...]."""
    params: dict[str, str | float] = {"query": expr, "start": start, "end": end, "step": step}
    return cast(list[dict[str, Any]], _data(url, "/api/v1/query_range", params)["result"])


def firing_alerts(url: str, action: str | None = None) -> list[dict[str, str]]:
    """The label sets of the alerts firing now (pending ones excluded); with `action`, only those
    whose `action` label is that (the rollback triggers carry action=rollback)."""
    alerts = cast(list[dict[str, Any]], _data(url, "/api/v1/alerts")["alerts"])
    return [
        dict(a["labels"])
        for a in alerts
        if a.get("state") == FIRING and (action is None or a["labels"].get("action") == action)
    ]


def firing_expr(alertname: str) -> str:
    """The series of one alert while it fires (Prometheus's ALERTS metric)."""
    return f'ALERTS{{alertname="{alertname}",alertstate="{FIRING}"}}'
