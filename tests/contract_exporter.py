"""A small prometheus-client process that exports every metric of the contract with live values.

Stands in for the gateway in the query test: `python contract_exporter.py PORT PLAN`. It serves
/metrics on 127.0.0.1:PORT and keeps traffic flowing (bounded: it exits after 120 s).
"""

from __future__ import annotations

import random
import sys
import time

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from cutover.plan.metrics import CONTRACT, DRIFT_BUCKETS, latency_buckets, name
from cutover.plan.model import load_plan


def main(port: int, plan_path: str, seconds: float = 120) -> None:
    plan = load_plan(plan_path)
    spec = {m.key: m for m in CONTRACT}
    make = {"counter": Counter, "gauge": Gauge}
    metric = {}
    for key, m in spec.items():
        n = name(plan, key)
        if m.type == "histogram":
            buckets = latency_buckets(plan) if key == "duration" else DRIFT_BUCKETS
            metric[key] = Histogram(
                n.removesuffix("_seconds") + "_seconds" if key == "duration" else n,
                m.meaning,
                m.labels,
                buckets=buckets,
            )
        else:
            metric[key] = make[m.type](n.removesuffix("_total"), m.meaning, m.labels)
    metric["phase_info"].labels(phase="canary", stack="staging").set(1)
    metric["drift_ready"].set(1)
    start_http_server(port, addr="127.0.0.1")
    rng = random.Random(1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(50):
            cohort = "treatment" if rng.random() < 0.3 else "control"
            path = "memoryos" if cohort == "treatment" else "legacy"
            op = rng.choice(["recall", "recall", "remember"])
            outcome = "error" if rng.random() < 0.02 else "ok"
            metric["requests"].labels(op=op, path=path, cohort=cohort, outcome=outcome).inc()
            metric["duration"].labels(op=op, path=path, cohort=cohort).observe(rng.lognormvariate(-3.5, 0.8))
            metric["flag_evaluations"].labels(flag=plan.flag_keys.read_path, variant=cohort).inc()
        metric["fallbacks"].labels(op="recall", reason="timeout").inc()
        metric["mirror_failures"].labels(target="memoryos", reason="timeout").inc()
        metric["rollbacks"].labels(trigger="CutoverTreatmentErrorRateHigh", level="immediate").inc(0)
        metric["outbox_depth"].labels(target="memoryos").set(rng.randint(0, 20))
        metric["outbox_oldest_age"].labels(target="memoryos").set(rng.random() * 3)
        for measure in ("parity", "jaccard", "rbo"):
            metric["drift"].labels(measure=measure).observe(rng.random() * 0.2)
        time.sleep(0.1)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
