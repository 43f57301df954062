"""Prometheus rule groups rendered from the plan: SLI recording rules, multiwindow multi-burn-rate
SLO alerts, the phase's abort triggers and a dead-man's switch.

Every threshold comes from the plan (`plan.effective(phase)`); denominators are guarded with `> 0`
so zero traffic yields no series, and so never pages. Each alert carries `severity`, `phase`,
`stack`, a `summary`, a `description` with the value, and a `runbook_url` to its page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cutover.plan.durations import format_duration, parse_duration
from cutover.plan.metrics import le
from cutover.plan.model import EffectivePhase, Plan
from cutover.render.promql import PromQL

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


def recording_rules(plan: Plan, eff: EffectivePhase) -> list[dict]:
    q = PromQL(plan)
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
    name_: str, expr: str, for_: str, severity: str, summary: str, description: str, ctx: dict, **labels: str
) -> dict:
    rule = {
        "alert": name_,
        "expr": expr,
        "for": for_,
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


def burn_rate_alerts(plan: Plan, eff: EffectivePhase, ctx: dict) -> list[dict]:
    out = []
    for slo in slos(eff):
        budget = round(1 - slo.objective, 10)
        alert = f"CutoverRecall{slo.key.capitalize()}BurnRate"
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


def abort_alerts(plan: Plan, eff: EffectivePhase, ctx: dict) -> list[dict]:
    """The phase's abort triggers: critical pages the controller acts on (label action=rollback)."""
    q, t = PromQL(plan), eff.abort_triggers
    treatment = eff.phase.flags.treatment
    both_cohorts = not treatment.is_global and (treatment.weight > 0 or treatment.internal)
    has_treatment = treatment.weight > 0 or treatment.internal
    w, for_ = "5m", format_duration(t.for_)
    act = {"action": "rollback", "rollback_level": t.rollback}
    ratio = lambda cohort: (  # noqa: E731
        f"{q.rate('requests', w, '', op='recall', cohort=cohort, outcome='error')}\n"
        f"/\n({q.rate('requests', w, '', op='recall', cohort=cohort)} > 0)"
    )
    rules = [
        _alert(
            "CutoverTreatmentLatencyP95High",
            f"{q.quantile(0.95, w, op='recall', cohort='treatment')} > {t.p95_latency_ms / 1000:g}",
            for_,
            "critical",
            f"Treatment recall p95 above {t.p95_latency_ms:g} ms",
            f"Treatment recall p95 is {VALUE} s over {w} (abort trigger {t.p95_latency_ms / 1000:g} s).",
            ctx,
            **act,
        ),
        _alert(
            "CutoverTreatmentErrorRateHigh",
            f"({ratio('treatment')}) > {t.error_rate:g}",
            for_,
            "critical",
            f"Treatment recall error rate above {t.error_rate:.1%}",
            f"Treatment recall error rate is {VALUE} over {w} (abort trigger {t.error_rate:g}).",
            ctx,
            **act,
        ),
        _alert(
            "CutoverDriftHigh",
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
            "CutoverFallbackRateHigh",
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
            "CutoverOutboxDepthHigh",
            f"max({q.series('outbox_depth')}) > {t.outbox_depth}",
            for_,
            "critical",
            f"Mirror outbox holds more than {t.outbox_depth} writes",
            f"The mirror outbox holds {VALUE} writes (abort trigger {t.outbox_depth}).",
            ctx,
            **act,
        ),
        _alert(
            "CutoverOutboxLagHigh",
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
                "CutoverTreatmentP99AboveControl",
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
                "CutoverTreatmentErrorRateAboveControl",
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
                "CutoverTreatmentNoData",
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


def watchdog(ctx: dict) -> dict:
    """The dead man's switch. Severity `none`, as kube-prometheus-stack's own Watchdog: its default
    Alertmanager configuration inhibits `severity: info` alerts (InfoInhibitor), which would silence
    the heartbeat the switch listens for."""
    return _alert(
        "CutoverWatchdog",
        "vector(1)",
        "0s",
        "none",
        "Alerting pipeline heartbeat",
        "Always firing. If it stops arriving, Prometheus, the rules or Alertmanager are down.",
        ctx,
    )


_WINDOW = re.compile(r"\[(\d+(?:\.\d+)?[smhdw])\]")


def _scaled(duration: str, scale: float) -> str:
    return format_duration(max(1, round(parse_duration(duration) / scale)))


def compress(rules: dict, scale: float) -> dict:
    """The same rules with every range window and `for:` divided by `scale` (rehearsals only: a
    5-minute window becomes 10 s at scale 30). Rule and record names keep their nominal windows."""
    out: dict[str, list[dict]] = {"groups": []}
    for g in rules["groups"]:
        group = {**g, "rules": []}
        for r in g["rules"]:
            r = {**r, "expr": _WINDOW.sub(lambda m: f"[{_scaled(m.group(1), scale)}]", r["expr"])}
            if "for" in r:
                r["for"] = _scaled(r["for"], scale)
            group["rules"].append(r)
        out["groups"].append(group)
    return out


def render_rules(
    plan: Plan, phase: str, stack: str, runbook_base: str, time_scale: float = 1.0, namespace: str | None = None
) -> dict:
    """A plain Prometheus rule file (`groups:`), as promtool and a PrometheusRule spec take it."""
    if time_scale != 1.0:
        return compress(render_rules(plan, phase, stack, runbook_base, namespace=namespace), time_scale)
    eff = plan.effective(phase)
    # namespace: the stack's; the prometheus-operator's AlertmanagerConfig only routes alerts labelled
    # with its own namespace (its default matcher strategy), and the sums drop the series' label
    ctx = {"phase": phase, "stack": stack, "runbook_base": runbook_base, "namespace": namespace}
    return {
        "groups": [
            {"name": "cutover-sli-recording", "rules": recording_rules(plan, eff)},
            {"name": "cutover-slo-burn-rate", "rules": burn_rate_alerts(plan, eff, ctx)},
            {"name": "cutover-abort-triggers", "rules": abort_alerts(plan, eff, ctx)},
            {"name": "cutover-meta", "rules": [watchdog(ctx)]},
        ]
    }


def alert_names(rules: dict) -> list[str]:
    return sorted({r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r})
