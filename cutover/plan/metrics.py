"""The metrics contract: one documented set of names, types and labels.

The gateway exports them, the rules and dashboards query them, the docs print `contract_markdown()`.
Names come from the plan's `metrics:` section (defaults: the reference gateway's).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from cutover.plan.model import Plan

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DRIFT_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class MetricSpec:
    key: str  # field of plan.metrics
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    meaning: str


CONTRACT: tuple[MetricSpec, ...] = (
    MetricSpec(
        "requests",
        "counter",
        ("op", "path", "cohort", "outcome"),
        "requests by operation (remember, get, delete, recall), answering path (legacy, memoryos), "
        "cohort (control, treatment) and outcome (ok, error)",
    ),
    MetricSpec("duration", "histogram", ("op", "path", "cohort"), "request duration in seconds"),
    MetricSpec(
        "fallbacks",
        "counter",
        ("op", "reason"),
        "MemoryOS requests answered by legacy instead, by reason (error, timeout, outage)",
    ),
    MetricSpec("outbox_depth", "gauge", ("target",), "mirror writes waiting in the durable outbox, by target store"),
    MetricSpec("outbox_oldest_age", "gauge", ("target",), "age in seconds of the oldest waiting mirror write"),
    MetricSpec(
        "outbox_dead_letters",
        "gauge",
        ("target",),
        "mirror writes given up after their retries (dead letters), by target store: "
        "cleared by `cutover reconcile --repair` or requeued by POST /admin/outbox/requeue",
    ),
    MetricSpec(
        "wal_frames",
        "gauge",
        ("file",),
        "frames in a SQLite write-ahead log the gateway keeps (store or outbox), at its last checkpoint: the soak "
        "reports its slope; it should stay bounded (the WAL starts over once long)",
    ),
    MetricSpec(
        "mirror_failures",
        "counter",
        ("target", "reason"),
        "mirror write attempts that failed (retried, or dead-lettered)",
    ),
    MetricSpec(
        "drift",
        "histogram",
        ("measure",),
        "drift per shadow read, 0 to 1: parity (the share of records either store returns that the other does not "
        "hold identically; the gate's measure), and the ranking change: jaccard distance and rbo distance of the top k",
    ),
    MetricSpec("flag_evaluations", "counter", ("flag", "variant"), "flag evaluations by flag and variant"),
    MetricSpec(
        "flag_config_errors",
        "counter",
        ("reason",),
        "flag files refused (the last good flag set stays in force) and evaluations that failed, by reason "
        "(invalid: the file, evaluation: one request)",
    ),
    MetricSpec("rollbacks", "counter", ("trigger", "level"), "automated and manual rollbacks by trigger and level"),
    MetricSpec("phase_info", "gauge", ("phase", "stack"), "1 for the phase the service runs in"),
    MetricSpec("drift_ready", "gauge", (), "1 when the drift gate is ready for cutover, else 0"),
)


def latency_buckets(plan: Plan) -> tuple[float, ...]:
    """Standard buckets plus every latency threshold of the plan, so SLIs count exactly at them."""
    extra = {plan.monitoring.recall_p99_ms / 1000, plan.abort_triggers.p95_latency_ms / 1000}
    for p in plan.phases:
        eff = plan.effective(p.name)
        extra |= {eff.monitoring.recall_p99_ms / 1000, eff.abort_triggers.p95_latency_ms / 1000}
    return tuple(sorted(set(LATENCY_BUCKETS) | extra))


def le(seconds: float) -> str:
    """The `le` label value Prometheus clients write for a bucket bound."""
    return str(floatToGoString(seconds))  # type: ignore[no-untyped-call]  # prometheus_client is untyped


def name(plan: Plan, key: str) -> str:
    return str(getattr(plan.metrics, key))


def contract_markdown(plan: Plan) -> str:
    rows = ["| name | type | labels | meaning |", "|---|---|---|---|"]
    for m in CONTRACT:
        labels = ", ".join(f"`{x}`" for x in m.labels) or "-"
        rows.append(f"| `{name(plan, m.key)}` | {m.type} | {labels} | {m.meaning} |")
    return "\n".join(rows) + "\n"
