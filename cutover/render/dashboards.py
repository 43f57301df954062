"""Four Grafana dashboards built with grafana-foundation-sdk from the plan and the metrics contract.

Rollout overview · Canary vs control · SLO compliance · Migration and dual-run. Every query uses the
plan's metric names; `stack` and `cohort` are template variables; thresholds drawn on panels come
from the plan. `cutover dashboards export` writes them to dashboards/*.json (committed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
)

from cutover.plan.model import Plan
from cutover.render.alerts import BURN_WINDOWS, LATENCY_OBJECTIVE
from cutover.render.promql import PromQL

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RI = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # timeseries | stat
    unit: str
    queries: tuple[tuple[str, str], ...]  # (expr, legend)
    description: str = ""
    threshold: float | None = None


def panels(plan: Plan) -> dict[str, tuple[str, list[tuple[str, list[Panel]]]]]:
    """slug -> (title, [(row title, [panels])]). Pure data: what the dashboards show."""
    q = PromQL(plan, window=RI, extra=['stack=~"$stack"'], cohort_extra=['cohort=~"$cohort"'])
    t, mon = plan.abort_triggers, plan.monitoring
    budget = round(1 - mon.recall_availability, 10)
    lat_budget = round(1 - LATENCY_OBJECTIVE, 10)
    parity = q.mean("drift", sep=" / ", measure="parity")
    jacc = q.mean("drift", sep=" / ", measure="jaccard")
    return {
        "rollout-overview": (
            "MemoryOS rollout: overview",
            [
                (
                    "Phase and traffic",
                    [
                        Panel(
                            "Phase",
                            "stat",
                            "none",
                            ((f"max by (phase) ({q.series('phase_info')})", "{{phase}}"),),
                            "the phase the gateway runs in (cutover_phase_info)",
                        ),
                        Panel(
                            "Traffic split by cohort",
                            "timeseries",
                            "percentunit",
                            (
                                (
                                    f"{q.rate('requests', by='cohort')} / "
                                    f"scalar(sum(rate({q.series('requests', cohort_label=True)}[{RI}])))",
                                    "{{cohort}}",
                                ),
                            ),
                            "share of requests per cohort",
                        ),
                        Panel(
                            "Requests by path",
                            "timeseries",
                            "reqps",
                            ((q.rate("requests", by="op, path"), "{{op}} via {{path}}"),),
                        ),
                        Panel(
                            "Rollbacks",
                            "stat",
                            "none",
                            ((f"sum(increase({q.series('rollbacks')}[1d])) or vector(0)", "last 24 h"),),
                        ),
                    ],
                ),
                (
                    "Errors and latency",
                    [
                        Panel(
                            "Recall error rate by path",
                            "timeseries",
                            "percentunit",
                            ((q.error_ratio(by="path", sep=" / ", op="recall"), "{{path}}"),),
                            threshold=t.error_rate,
                        ),
                        Panel(
                            "Recall latency p50 / p99 by path",
                            "timeseries",
                            "s",
                            (
                                (q.quantile(0.5, by="path", op="recall"), "p50 {{path}}"),
                                (q.quantile(0.99, by="path", op="recall"), "p99 {{path}}"),
                            ),
                            threshold=mon.recall_p99_ms / 1000,
                        ),
                    ],
                ),
            ],
        ),
        "canary-vs-control": (
            "MemoryOS rollout: canary vs control",
            [
                (
                    "Latency",
                    [
                        Panel(
                            "Recall p50 by cohort",
                            "timeseries",
                            "s",
                            ((q.quantile(0.5, by="cohort", op="recall"), "{{cohort}}"),),
                        ),
                        Panel(
                            "Recall p99 by cohort",
                            "timeseries",
                            "s",
                            ((q.quantile(0.99, by="cohort", op="recall"), "{{cohort}}"),),
                            threshold=mon.recall_p99_ms / 1000,
                        ),
                        Panel(
                            "Recall p99 ratio, treatment / control",
                            "timeseries",
                            "none",
                            (
                                (
                                    f"{q.quantile(0.99, by='cohort', op='recall', cohort='treatment')} "
                                    "/ ignoring(cohort) "
                                    f"{q.quantile(0.99, by='cohort', op='recall', cohort='control')}",
                                    "p99 ratio",
                                ),
                            ),
                            threshold=1 + plan.analysis.tail_regression_max,
                        ),
                    ],
                ),
                (
                    "Errors, throughput and quality",
                    [
                        Panel(
                            "Recall error rate by cohort",
                            "timeseries",
                            "percentunit",
                            ((q.error_ratio(by="cohort", sep=" / ", op="recall"), "{{cohort}}"),),
                            threshold=t.error_rate,
                        ),
                        Panel(
                            "Throughput by cohort",
                            "timeseries",
                            "reqps",
                            ((q.rate("requests", by="cohort"), "{{cohort}}"),),
                        ),
                        Panel(
                            "Parity drift (records returned that the other store does not hold identically)",
                            "timeseries",
                            "none",
                            ((parity, "parity drift"),),
                            threshold=mon.drift_max,
                        ),
                        Panel(
                            "Ranking change (mean top-k Jaccard distance; informational, by design)",
                            "timeseries",
                            "none",
                            ((jacc, "ranking change"),),
                        ),
                    ],
                ),
            ],
        ),
        "slo-compliance": (
            "MemoryOS rollout: SLO compliance",
            [
                (
                    "Error budget",
                    [
                        Panel(
                            "Availability error budget remaining (3d)",
                            "stat",
                            "percentunit",
                            ((f"1 - max(cutover:recall_errors:ratio_rate3d) / {budget:g}", "remaining"),),
                            f"objective {mon.recall_availability:g}",
                        ),
                        Panel(
                            "Latency error budget remaining (3d)",
                            "stat",
                            "percentunit",
                            ((f"1 - max(cutover:recall_slow:ratio_rate3d) / {lat_budget:g}", "remaining"),),
                            f"objective: {LATENCY_OBJECTIVE:g} of recalls under {mon.recall_p99_ms:g} ms",
                        ),
                    ],
                ),
                (
                    "Burn rates",
                    [
                        Panel(
                            "Availability burn rate",
                            "timeseries",
                            "none",
                            tuple(
                                (
                                    f"max(cutover:recall_errors:ratio_rate{bw.long}) / {budget:g}",
                                    f"{bw.long} ({bw.factor:g}x pages)",
                                )
                                for bw in BURN_WINDOWS
                            ),
                            threshold=BURN_WINDOWS[0].factor,
                        ),
                        Panel(
                            "Latency burn rate",
                            "timeseries",
                            "none",
                            tuple(
                                (
                                    f"max(cutover:recall_slow:ratio_rate{bw.long}) / {lat_budget:g}",
                                    f"{bw.long} ({bw.factor:g}x pages)",
                                )
                                for bw in BURN_WINDOWS
                            ),
                            threshold=BURN_WINDOWS[0].factor,
                        ),
                    ],
                ),
            ],
        ),
        "migration-dual-run": (
            "MemoryOS rollout: migration and dual-run",
            [
                (
                    "Outbox (mirror writes)",
                    [
                        Panel(
                            "Outbox depth",
                            "timeseries",
                            "none",
                            ((f"max by (target) ({q.series('outbox_depth')})", "{{target}}"),),
                            threshold=t.outbox_depth,
                        ),
                        Panel(
                            "Oldest unmirrored write",
                            "timeseries",
                            "s",
                            ((f"max by (target) ({q.series('outbox_oldest_age')})", "{{target}}"),),
                            threshold=t.outbox_oldest_age_s,
                        ),
                        Panel(
                            "Mirror failures",
                            "timeseries",
                            "ops",
                            (
                                (
                                    f"{q.rate('mirror_failures', by='target, reason', cohort_label=False)} "
                                    "or vector(0)",
                                    "{{target}} {{reason}}",
                                ),
                            ),
                        ),
                    ],
                ),
                (
                    "Degradation and drift",
                    [
                        Panel(
                            "Fallback rate by reason",
                            "timeseries",
                            "percentunit",
                            (
                                (
                                    f"{q.rate('fallbacks', by='reason', cohort_label=False, op='recall')} / "
                                    "scalar(sum(rate("
                                    f"{q.series('requests', op='recall', cohort='treatment')}[{RI}])) > 0)",
                                    "{{reason}}",
                                ),
                            ),
                            threshold=t.fallback_rate,
                        ),
                        Panel(
                            "Parity drift distribution",
                            "timeseries",
                            "none",
                            (
                                (
                                    f"sum by (le) (rate({q.series('drift', '_bucket', measure='parity')}[{RI}]))",
                                    "le {{le}}",
                                ),
                            ),
                        ),
                        Panel(
                            "Flag evaluations by variant",
                            "timeseries",
                            "ops",
                            (
                                (
                                    q.rate("flag_evaluations", by="flag, variant", cohort_label=False),
                                    "{{flag}}: {{variant}}",
                                ),
                            ),
                        ),
                        Panel("Drift gate ready", "stat", "none", ((f"max({q.series('drift_ready')})", "ready"),)),
                    ],
                ),
            ],
        ),
    }


def _panel_builder(p: Panel) -> timeseries.Panel | stat.Panel:
    b = (timeseries.Panel() if p.kind == "timeseries" else stat.Panel()).title(p.title).unit(p.unit).datasource(DS)
    b = b.height(8).span(12 if p.kind == "timeseries" else 6)
    if p.description:
        b = b.description(p.description)
    for i, (expr, legend) in enumerate(p.queries):
        b = b.with_target(Dataquery().expr(expr).legend_format(legend).ref_id(chr(65 + i)).datasource(DS))
    if p.threshold is not None:
        b = b.thresholds(
            ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="green"), Threshold(value=p.threshold, color="red")])
        )
    return b


def build(plan: Plan) -> dict[str, dict[str, Any]]:
    """slug -> dashboard JSON (as Grafana stores it)."""
    out = {}
    for slug, (title, rows) in panels(plan).items():
        d = (
            Dashboard(title)
            .uid(f"cutover-{slug}")
            .tags(["cutover", "memoryos", "rollout"])
            .refresh("30s")
            .time("now-6h", "now")
            .editable()
        )
        d = d.with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        d = d.with_variable(
            QueryVariable("stack")
            .label("Stack")
            .datasource(DS)
            .query(f"label_values({PromQL(plan).name('phase_info')}, stack)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
        )
        d = d.with_variable(
            QueryVariable("cohort")
            .label("Cohort")
            .datasource(DS)
            .query(f"label_values({PromQL(plan).name('requests')}, cohort)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
            .multi(True)
        )
        for row_title, row_panels in rows:
            d = d.with_row(Row(row_title))
            for p in row_panels:
                d = d.with_panel(_panel_builder(p))
        out[slug] = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(d.build()))
    return out


def dumps(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every panel target."""
    found = []
    for p in dashboard.get("panels", []):
        for target in p.get("targets", []) or []:
            if target.get("expr"):
                found.append((p["title"], target["expr"]))
    return found
