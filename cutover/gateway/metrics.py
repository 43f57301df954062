"""What the gateway exports to Prometheus: the metric names of the plan's contract
(`cutover.plan.metrics`), with their labels and buckets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cutover.plan.metrics import DRIFT_BUCKETS, latency_buckets, name
from cutover.plan.model import Plan


class GatewayMetrics:
    def __init__(self, plan: Plan, registry: CollectorRegistry) -> None:
        def n(key: str) -> str:  # the client adds _total
            return name(plan, key).removesuffix("_total")

        self.requests = Counter(n("requests"), "requests", ["op", "path", "cohort", "outcome"], registry=registry)
        self.duration = Histogram(
            name(plan, "duration"),
            "request duration, s",
            ["op", "path", "cohort"],
            buckets=latency_buckets(plan),
            registry=registry,
        )
        self.fallbacks = Counter(n("fallbacks"), "fallbacks to legacy", ["op", "reason"], registry=registry)
        self.outbox_depth = Gauge(name(plan, "outbox_depth"), "outbox depth", ["target"], registry=registry)
        self.outbox_age = Gauge(
            name(plan, "outbox_oldest_age"), "oldest outbox entry age, s", ["target"], registry=registry
        )
        self.wal_frames = Gauge(
            name(plan, "wal_frames"), "WAL frames at the last checkpoint", ["file"], registry=registry
        )
        self.outbox_dead = Gauge(
            name(plan, "outbox_dead_letters"), "dead-lettered mirror writes", ["target"], registry=registry
        )
        self.mirror_failures = Counter(n("mirror_failures"), "mirror failures", ["target", "reason"], registry=registry)
        self.drift = Histogram(
            name(plan, "drift"), "retrieval drift", ["measure"], buckets=DRIFT_BUCKETS, registry=registry
        )
        self.flag_evaluations = Counter(
            n("flag_evaluations"), "flag evaluations", ["flag", "variant"], registry=registry
        )
        self.flag_config_errors = Counter(
            n("flag_config_errors"), "flag files refused and evaluations failed", ["reason"], registry=registry
        )
        self.rollbacks = Counter(n("rollbacks"), "rollbacks", ["trigger", "level"], registry=registry)
        self.phase_info = Gauge(name(plan, "phase_info"), "phase", ["phase", "stack"], registry=registry)
        self.drift_ready = Gauge(name(plan, "drift_ready"), "drift gate ready", registry=registry)
