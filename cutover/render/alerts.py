"""Prometheus rule groups rendered from the plan: SLI recording rules, multiwindow multi-burn-rate
SLO alerts, the phase's abort triggers and a dead-man's switch.

Every threshold comes from the plan (`plan.effective(phase)`); denominators are guarded with `> 0`
so zero traffic yields no series, and so never pages. Each alert carries `severity`, `phase`,
`stack`, a `summary`, a `description` with the value, and a `runbook_url` to its page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cutover.plan.durations import format_duration
from cutover.plan.metrics import le
from cutover.plan.model import EffectivePhase, Plan
from cutover.render.promql import PromQL


class AlertName:
    """Every alert's name, once: the rules, their promtool tests, the rehearsal and the docs use these."""

    TREATMENT_LATENCY_P95_HIGH = "CutoverTreatmentLatencyP95High"
    TREATMENT_ERROR_RATE_HIGH = "CutoverTreatmentErrorRateHigh"
    DRIFT_HIGH = "CutoverDriftHigh"
    FALLBACK_RATE_HIGH = "CutoverFallbackRateHigh"
    OUTBOX_DEPTH_HIGH = "CutoverOutboxDepthHigh"
    OUTBOX_LAG_HIGH = "CutoverOutboxLagHigh"
    TREATMENT_P99_ABOVE_CONTROL = "CutoverTreatmentP99AboveControl"
    TREATMENT_ERROR_RATE_ABOVE_CONTROL = "CutoverTreatmentErrorRateAboveControl"
    TREATMENT_NO_DATA = "CutoverTreatmentNoData"
    WATCHDOG = "CutoverWatchdog"

    @staticmethod
    def burn_rate(slo_key: str) -> str:
        """The multiwindow burn-rate alert of an SLO (availability | latency)."""
        return f"CutoverRecall{slo_key.capitalize()}BurnRate"


WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
LATENCY_OBJECTIVE = 0.99  # the latency SLO: 99 % of recalls under monitoring.recall_p99_ms


@dataclass(frozen=True)
class BurnWindow:
    factor: float
    long: str
    short: str
    for_: str
    severity: str


# Google SRE workbook, table 5-8: 2 % of a 30-day budget in 1 h, 5 % in 6 h, 10 % in 1 d, 100 % in 3 d.
BURN_WINDOWS = (
    BurnWindow(14.4, "1h", "5m", "2m", "critical"),
    BurnWindow(6, "6h", "30m", "15m", "critical"),
    BurnWindow(3, "1d", "2h", "1h", "warning"),
    BurnWindow(1, "3d", "6h", "3h", "warning"),
)


@dataclass(frozen=True)
class Slo:
    key: str  # availability | latency
    title: str
    objective: float
    record: str  # recording rule prefix of its bad-event ratio


def slos(eff: EffectivePhase) -> tuple[Slo, ...]:
    return (
        Slo(
            "availability",
            "recall availability",
            eff.monitoring.recall_availability,
            "cutover:recall_errors:ratio_rate",
        ),
        Slo(
            "latency",
            f"recall latency under {eff.monitoring.recall_p99_ms:g} ms",
            LATENCY_OBJECTIVE,
            "cutover:recall_slow:ratio_rate",
        ),
    )


def kebab(alert: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", alert).lower()


def runbook_url(base: str, alert: str) -> str:
    return f"{base.rstrip('/')}/on-call/alerts/{kebab(alert)}/"


def recording_rules(plan: Plan, eff: EffectivePhase, time_scale: float = 1.0) -> list[dict[str, Any]]:
    q = PromQL(plan, time_scale=time_scale)
    bound = le(eff.monitoring.recall_p99_ms / 1000)
    rules = []
    for w in WINDOWS:
        total = q.rate("requests", w, "cohort", op="recall")
        count = q.rate("duration", w, "cohort", "_count", op="recall")
        rules += [
            {"record": f"cutover:recall_requests:rate{w}", "expr": total},
            {
                "record": f"cutover:recall_errors:ratio_rate{w}",
                "expr": q.ratio(q.rate("requests", w, "cohort", op="recall", outcome="error"), total),
            },
            {
                "record": f"cutover:recall_slow:ratio_rate{w}",
                "expr": q.ratio(
                    f"(\n  {count}\n-\n  {q.rate('duration', w, 'cohort', '_bucket', op='recall', le=bound)}\n)", count
                ),
            },
        ]
    return rules


def _alert(
    name_: str, expr: str, for_: str, severity: str, summary: str, description: str, ctx: dict[str, Any], **labels: str
) -> dict[str, Any]:
    rule = {
        "alert": name_,
        "expr": expr,
        "for": PromQL.scale_duration(for_, ctx["time_scale"]),
        "labels": {
            "severity": severity,
            "phase": ctx["phase"],
            "stack": ctx["stack"],
            **({"namespace": ctx["namespace"]} if ctx.get("namespace") else {}),
            **labels,
        },
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url(ctx["runbook_base"], name_),
        },
    }
    if for_ == "0s":
        del rule["for"]
    return rule


VALUE = '{{ printf "%.3f" $value }}'


def burn_rate_alerts(plan: Plan, eff: EffectivePhase, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for slo in slos(eff):
        budget = round(1 - slo.objective, 10)
        alert = AlertName.burn_rate(slo.key)
        for bw in BURN_WINDOWS:
            expr = (
                f"({slo.record}{bw.long} / {budget:g}) > {bw.factor:g}\n"
                f"and\n({slo.record}{bw.short} / {budget:g}) > {bw.factor:g}"
            )
            out.append(
                _alert(
                    alert,
                    expr,
                    bw.for_,
                    bw.severity,
                    f"{slo.title} SLO ({slo.objective:g}) burning {bw.factor:g}x its error budget",
                    f"Cohort {{{{ $labels.cohort }}}} burns the {slo.title} error budget at {VALUE}x over {bw.long} "
                    f"(and {bw.short}); at {bw.factor:g}x the {format_duration(eff.monitoring.slo_window)} budget "
                    f"lasts {format_duration(eff.monitoring.slo_window / bw.factor)}.",
                    ctx,
                    slo=slo.key,
                    long=bw.long,
                    short=bw.short,
                )
            )
    return out


def abort_alerts(plan: Plan, eff: EffectivePhase, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The phase's abort triggers: critical pages the controller acts on (label action=rollback)."""
    q, t = PromQL(plan, time_scale=ctx["time_scale"]), eff.abort_triggers
    treatment = eff.phase.flags.treatment
    both_cohorts = not treatment.is_global and (treatment.weight > 0 or treatment.internal)
    has_treatment = treatment.weight > 0 or treatment.internal
    w, for_ = "5m", format_duration(t.for_)
    act = {"action": "rollback", "rollback_level": t.rollback}
    ratio: Callable[[str], str] = lambda cohort: (  # noqa: E731
        f"{q.rate('requests', w, '', op='recall', cohort=cohort, outcome='error')}\n"
        f"/\n({q.rate('requests', w, '', op='recall', cohort=cohort)} > 0)"
    )
    rules = [
        _alert(
            AlertName.TREATMENT_LATENCY_P95_HIGH,
            f"{q.quantile(0.95, w, op='recall', cohort='treatment')} > {t.p95_latency_ms / 1000:g}",
            for_,
            "critical",
            f"Treatment recall p95 above {t.p95_latency_ms:g} ms",
            f"Treatment recall p95 is {VALUE} s over {w} (abort trigger {t.p95_latency_ms / 1000:g} s).",
            ctx,
            **act,
        ),
        _alert(
            AlertName.TREATMENT_ERROR_RATE_HIGH,
            f"({ratio('treatment')}) > {t.error_rate:g}",
            for_,
            "critical",
            f"Treatment recall error rate above {t.error_rate:.1%}",
            f"Treatment recall error rate is {VALUE} over {w} (abort trigger {t.error_rate:g}).",
            ctx,
            **act,
        ),
        _alert(
            AlertName.DRIFT_HIGH,
            f"({q.mean('drift', '15m', measure='parity')}) > {t.drift:g}",
            for_,
            "critical",
            f"Parity drift above {t.drift:g}",
            f"Mean parity drift of shadow reads (the share of returned records the other store does not hold "
            f"identically) is {VALUE} over 15m (abort trigger {t.drift:g}).",
            ctx,
            **act,
        ),
        _alert(
            AlertName.FALLBACK_RATE_HIGH,
            f"({q.rate('fallbacks', w, '', op='recall')}\n/\n"
            f"({q.rate('requests', w, '', op='recall', cohort='treatment')} > 0))"
            f" > {t.fallback_rate:g}",
            for_,
            "critical",
            f"MemoryOS fallback rate above {t.fallback_rate:.1%}",
            f"{VALUE} of treatment recalls fell back to legacy over {w} (abort trigger {t.fallback_rate:g}).",
            ctx,
            **act,
        ),
        _alert(
            AlertName.OUTBOX_DEPTH_HIGH,
            f"max({q.series('outbox_depth')}) > {t.outbox_depth}",
            for_,
            "critical",
            f"Mirror outbox holds more than {t.outbox_depth} writes",
            f"The mirror outbox holds {VALUE} writes (abort trigger {t.outbox_depth}).",
            ctx,
            **act,
        ),
        _alert(
            AlertName.OUTBOX_LAG_HIGH,
            f"max({q.series('outbox_oldest_age')}) > {t.outbox_oldest_age_s:g}",
            for_,
            "critical",
            f"Oldest unmirrored write older than {format_duration(t.outbox_oldest_age_s)}",
            f"The oldest write waiting in the outbox is {VALUE} s old (abort trigger {t.outbox_oldest_age_s:g} s).",
            ctx,
            **act,
        ),
    ]
    if both_cohorts:
        rules += [
            _alert(
                AlertName.TREATMENT_P99_ABOVE_CONTROL,
                f"({q.quantile(0.99, w, op='recall', cohort='treatment')}\n/\n"
                f"{q.quantile(0.99, w, op='recall', cohort='control')}) > {t.p99_ratio_vs_control:g}",
                for_,
                "critical",
                f"Treatment recall p99 above {t.p99_ratio_vs_control:g}x control",
                f"Treatment recall p99 is {VALUE}x control over {w} (abort trigger {t.p99_ratio_vs_control:g}x).",
                ctx,
                **act,
            ),
            _alert(
                AlertName.TREATMENT_ERROR_RATE_ABOVE_CONTROL,
                f"(({ratio('treatment')})\n- on() ({ratio('control')})) > {t.error_rate_increase_vs_control:g}",
                for_,
                "critical",
                f"Treatment error rate above control by more than {t.error_rate_increase_vs_control:.1%}",
                f"Treatment recall error rate exceeds control by {VALUE} over {w} "
                f"(abort trigger {t.error_rate_increase_vs_control:g}).",
                ctx,
                **act,
            ),
        ]
    if has_treatment:
        rules.append(
            _alert(
                AlertName.TREATMENT_NO_DATA,
                f"({q.rate('requests', '10m')} > 0)\nunless on()\n"
                f"({q.rate('requests', '10m', cohort='treatment')} > 0)",
                "10m",
                "critical",
                "No treatment traffic while requests flow",
                f"Requests flow at {VALUE}/s but none is from the treatment cohort: the flags, the cohort "
                "header or the exporter is broken, and every verdict would be NoData.",
                ctx,
            )
        )
    return rules


def watchdog(ctx: dict[str, Any]) -> dict[str, Any]:
    """The dead man's switch. Severity `none`, as kube-prometheus-stack's own Watchdog: its default
    Alertmanager configuration inhibits `severity: info` alerts (InfoInhibitor), which would silence
    the heartbeat the switch listens for."""
    return _alert(
        AlertName.WATCHDOG,
        "vector(1)",
        "0s",
        "none",
        "Alerting pipeline heartbeat",
        "Always firing. If it stops arriving, Prometheus, the rules or Alertmanager are down.",
        ctx,
    )


def render_rules(
    plan: Plan, phase: str, stack: str, runbook_base: str, time_scale: float = 1.0, namespace: str | None = None
) -> dict[str, Any]:
    """A plain Prometheus rule file (`groups:`), as promtool and a PrometheusRule spec take it.
    `time_scale`: every window and `for:` divided by it (rehearsals only); names keep their nominal
    windows."""
    eff = plan.effective(phase)
    # namespace: the stack's; the prometheus-operator's AlertmanagerConfig only routes alerts labelled
    # with its own namespace (its default matcher strategy), and the sums drop the series' label
    ctx = {
        "phase": phase,
        "stack": stack,
        "runbook_base": runbook_base,
        "namespace": namespace,
        "time_scale": time_scale,
    }
    return {
        "groups": [
            {"name": "cutover-sli-recording", "rules": recording_rules(plan, eff, time_scale)},
            {"name": "cutover-slo-burn-rate", "rules": burn_rate_alerts(plan, eff, ctx)},
            {"name": "cutover-abort-triggers", "rules": abort_alerts(plan, eff, ctx)},
            {"name": "cutover-meta", "rules": [watchdog(ctx)]},
        ]
    }


def alert_names(rules: dict[str, Any]) -> list[str]:
    return sorted({r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r})
