"""What the service does right after a flag change: the error rate and the recall p99 from
Prometheus, one line every few seconds for a while (`cutover flags --watch`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from cutover.ops.prometheus import query
from cutover.plan.model import Plan
from cutover.render.promql import PromQL


def watch_figures(plan: Plan, prometheus: str, seconds: float) -> Iterator[str]:
    """For `seconds`: a line of figures (a figure Prometheus does not give says why), then a pause."""
    import httpx

    promql = PromQL(plan, window="1m")
    q = {"error rate": promql.error_ratio(sep=" / "), "recall p99 (s)": promql.quantile(0.99, op="recall")}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        figures = []
        for label, expr in q.items():
            try:
                res = query(prometheus, expr)
                figures.append(f"{label} {float(res[0]['value'][1]):.4g}" if res else f"{label} no data")
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                figures.append(f"{label} unavailable ({type(exc).__name__})")
        yield f"{time.strftime('%H:%M:%S')}  " + ", ".join(figures)
        time.sleep(min(5, max(0.5, end - time.monotonic())))
