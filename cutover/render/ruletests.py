"""promtool unit tests for the rendered rules, built from the plan's thresholds.

For every alert: a scenario where it must fire (checked just before its `for:` has elapsed, when it
must still be silent, and just after, with its exact labels and annotations), a healthy scenario and
a zero-traffic scenario where it must stay silent. Synthetic traffic is exact per-minute counter
increments, so every expected value (ratio, histogram quantile, burn rate) is computed here in closed
form and compared with what Prometheus's engine evaluates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cutover.plan.durations import parse_duration
from cutover.plan.metrics import latency_buckets, le, name
from cutover.plan.model import Plan
from cutover.render.alerts import BURN_WINDOWS, LATENCY_OBJECTIVE, AlertName

MINUTE = 60
Series = Callable[[int], list[dict[str, Any]]]  # the input series of a test case, built for a length in minutes


@dataclass
class Cohort:
    """Recall traffic of one cohort: requests per minute, error share, latency mix [(seconds, share)]."""

    cohort: str
    rpm: float = 600
    error_ratio: float = 0.0
    latencies: list[tuple[float, float]] = field(default_factory=lambda: [(0.02, 1.0)])


def _counter(inc: float, minutes: int) -> str:
    return f"0+{inc:g}x{minutes}"


def traffic_series(plan: Plan, cohorts: list[Cohort], minutes: int) -> list[dict[str, Any]]:
    out = []
    for c in cohorts:
        path = "memoryos" if c.cohort == "treatment" else "legacy"
        base = f'op="recall",path="{path}",cohort="{c.cohort}"'
        errors = c.rpm * c.error_ratio
        out += [
            {"series": f'{name(plan, "requests")}{{{base},outcome="ok"}}', "values": _counter(c.rpm - errors, minutes)},
            {"series": f'{name(plan, "requests")}{{{base},outcome="error"}}', "values": _counter(errors, minutes)},
        ]
        dur = name(plan, "duration")
        for bound in [*latency_buckets(plan), float("inf")]:
            inc = sum(c.rpm * share for lat, share in c.latencies if lat <= bound)
            out.append({"series": f'{dur}_bucket{{{base},le="{le(bound)}"}}', "values": _counter(inc, minutes)})
        out += [
            {"series": f"{dur}_count{{{base}}}", "values": _counter(c.rpm, minutes)},
            {
                "series": f"{dur}_sum{{{base}}}",
                "values": _counter(sum(c.rpm * s * lat for lat, s in c.latencies), minutes),
            },
        ]
    return out


def bucket_quantile(plan: Plan, q: float, latency: float) -> float:
    """histogram_quantile when every request sits in one bucket: linear inside that bucket."""
    bounds = latency_buckets(plan)
    upper = next(b for b in bounds if latency <= b)
    lower = max([b for b in bounds if b < upper], default=0.0)
    return lower + (upper - lower) * q


def _fmt(template: str, value: float | None, labels: dict[str, Any]) -> str:
    text = template.replace('{{ printf "%.3f" $value }}', f"{value:.3f}" if value is not None else "")
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)


def _expected(rule: dict[str, Any], value: float | None, extra_labels: dict[str, Any]) -> dict[str, Any]:
    labels = {**rule["labels"], **extra_labels}
    return {
        "exp_labels": labels,
        "exp_annotations": {k: _fmt(v, value, labels) for k, v in rule["annotations"].items()},
    }


def _case(name_: str, series: list[dict[str, Any]], checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name_, "interval": "1m", "input_series": series, "alert_rule_test": checks}


def _fire_cases(
    rule: dict[str, Any],
    minutes_for: float,
    fire_series: list[dict[str, Any]],
    healthy_series: list[dict[str, Any]],
    zero_series: list[dict[str, Any]],
    value: float | None,
    extra: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """fire: still pending 1m before its for has elapsed, firing 3m after; healthy and zero traffic: silent."""
    before, after = f"{max(int(minutes_for) - 1, 0)}m", f"{int(minutes_for) + 3}m"
    a, extra = rule["alert"], extra or {}
    exp = _expected(rule, value, extra)
    tag = "-".join(f"{k}={v}" for k, v in extra.items() if k in ("long", "short")) or "abort"
    return [
        _case(
            f"{a} {tag}: fires after its for",
            fire_series,
            [
                {"eval_time": before, "alertname": a, "exp_alerts": []},
                {"eval_time": after, "alertname": a, "exp_alerts": [exp]},
            ],
        ),
        _case(
            f"{a} {tag}: silent when healthy", healthy_series, [{"eval_time": after, "alertname": a, "exp_alerts": []}]
        ),
        _case(
            f"{a} {tag}: silent on zero traffic", zero_series, [{"eval_time": after, "alertname": a, "exp_alerts": []}]
        ),
    ]


def _gauge(series: str, value: float, minutes: int) -> dict[str, Any]:
    return {"series": series, "values": f"{value:g}+0x{minutes}"}


def build_rule_tests(plan: Plan, phase: str, rules: dict[str, Any], rule_file: str = "rules.yml") -> dict[str, Any]:
    eff = plan.effective(phase)
    t, mon = eff.abort_triggers, eff.monitoring
    by_name: dict[str, list[dict[str, Any]]] = {}
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                by_name.setdefault(r["alert"], []).append(r)
    cases: list[dict[str, Any]] = []
    fmin: Callable[[dict[str, Any]], float] = lambda r: parse_duration(r.get("for", "0s")) / MINUTE  # noqa: E731
    span: Callable[[dict[str, Any]], int] = lambda r: int(fmin(r)) + 10  # noqa: E731
    healthy = [Cohort("treatment", error_ratio=0.001), Cohort("control", error_ratio=0.001)]
    zero = [Cohort("treatment", rpm=0), Cohort("control", rpm=0)]

    def simple(
        alert: str,
        fire: list[dict[str, Any]] | Series,
        good: list[dict[str, Any]] | Series,
        value: float,
        zero_s: Series | None = None,
    ) -> None:
        if alert not in by_name:
            return
        (r,) = by_name[alert]
        m = span(r)
        cases.extend(
            _fire_cases(
                r,
                fmin(r),
                fire(m) if callable(fire) else fire,
                good(m) if callable(good) else good,
                zero_s(m) if zero_s else traffic_series(plan, zero, m),
                value,
            )
        )

    slow, fast = 0.6, 0.02
    simple(
        AlertName.TREATMENT_LATENCY_P95_HIGH,
        lambda m: traffic_series(plan, [Cohort("treatment", latencies=[(slow, 1.0)]), Cohort("control")], m),
        lambda m: traffic_series(plan, healthy, m),
        bucket_quantile(plan, 0.95, slow),
    )
    simple(
        AlertName.TREATMENT_P99_ABOVE_CONTROL,
        lambda m: traffic_series(plan, [Cohort("treatment", latencies=[(0.2, 1.0)]), Cohort("control")], m),
        lambda m: traffic_series(plan, healthy, m),
        bucket_quantile(plan, 0.99, 0.2) / bucket_quantile(plan, 0.99, fast),
    )
    bad = min(0.5, max(t.error_rate, t.error_rate_increase_vs_control) * 3)
    simple(
        AlertName.TREATMENT_ERROR_RATE_HIGH,
        lambda m: traffic_series(plan, [Cohort("treatment", error_ratio=bad), Cohort("control")], m),
        lambda m: traffic_series(plan, healthy, m),
        bad,
    )
    simple(
        AlertName.TREATMENT_ERROR_RATE_ABOVE_CONTROL,
        lambda m: traffic_series(plan, [Cohort("treatment", error_ratio=bad), Cohort("control", error_ratio=0.001)], m),
        lambda m: traffic_series(plan, healthy, m),
        bad - 0.001,
    )

    drift = name(plan, "drift")

    def drift_series(mean: float, per_min: float) -> Series:
        return lambda m: [
            {"series": f'{drift}_sum{{measure="parity"}}', "values": _counter(mean * per_min, m)},
            {"series": f'{drift}_count{{measure="parity"}}', "values": _counter(per_min, m)},
            # the ranking change, large by design, never fires the alert
            {"series": f'{drift}_sum{{measure="jaccard"}}', "values": _counter(0.9 * per_min, m)},
            {"series": f'{drift}_count{{measure="jaccard"}}', "values": _counter(per_min, m)},
        ]

    high_drift = min(1.0, t.drift * 2)
    simple(
        AlertName.DRIFT_HIGH,
        drift_series(high_drift, 30),
        drift_series(t.drift / 4, 30),
        high_drift,
        drift_series(0, 0),
    )

    fb = name(plan, "fallbacks")
    fb_share = min(1.0, t.fallback_rate * 4)

    def fallback_series(share: float, rpm: float = 600) -> Series:
        return lambda m: (
            traffic_series(plan, [Cohort("treatment", rpm=rpm)], m)
            + [{"series": f'{fb}{{op="recall",reason="timeout"}}', "values": _counter(rpm * share, m)}]
        )

    simple(
        AlertName.FALLBACK_RATE_HIGH,
        fallback_series(fb_share),
        fallback_series(t.fallback_rate / 10),
        fb_share,
        fallback_series(0, rpm=0),
    )

    depth, age = name(plan, "outbox_depth"), name(plan, "outbox_oldest_age")
    simple(
        AlertName.OUTBOX_DEPTH_HIGH,
        lambda m: [_gauge(f'{depth}{{target="memoryos"}}', t.outbox_depth * 2.5, m)],
        lambda m: [_gauge(f'{depth}{{target="memoryos"}}', t.outbox_depth / 20, m)],
        t.outbox_depth * 2.5,
        lambda m: [_gauge(f'{depth}{{target="memoryos"}}', 0, m)],
    )
    simple(
        AlertName.OUTBOX_LAG_HIGH,
        lambda m: [_gauge(f'{age}{{target="memoryos"}}', t.outbox_oldest_age_s * 3, m)],
        lambda m: [_gauge(f'{age}{{target="memoryos"}}', 5, m)],
        t.outbox_oldest_age_s * 3,
        lambda m: [_gauge(f'{age}{{target="memoryos"}}', 0, m)],
    )
    simple(
        AlertName.TREATMENT_NO_DATA,
        lambda m: traffic_series(plan, [Cohort("control")], m),
        lambda m: traffic_series(plan, healthy, m),
        600 / MINUTE,
    )

    # Burn rates: for each window pair, a burn between its factor and the next higher one, so only
    # that pair fires when its `for:` has elapsed (the lower pairs wait longer).
    factors = sorted(bw.factor for bw in BURN_WINDOWS)
    for slo_key, objective in (("availability", mon.recall_availability), ("latency", LATENCY_OBJECTIVE)):
        budget = round(1 - objective, 10)
        alert = AlertName.burn_rate(slo_key)
        for r in by_name.get(alert, []):
            f = next(bw.factor for bw in BURN_WINDOWS if bw.long == r["labels"]["long"])
            higher = [x for x in factors if x > f]
            burn = (f + higher[0]) / 2 if higher else f * 1.4
            share = burn * budget
            if slo_key == "availability":
                fire = [Cohort("treatment", error_ratio=share), Cohort("control")]
            else:
                fire = [Cohort("treatment", latencies=[(slow, share), (fast, 1 - share)]), Cohort("control")]
            # healthy: half the budget's burn, below every factor
            if slo_key == "availability":
                ok = [Cohort("treatment", error_ratio=budget / 2), Cohort("control")]
            else:
                ok = [Cohort("treatment", latencies=[(slow, budget / 2), (fast, 1 - budget / 2)]), Cohort("control")]
            m = span(r)
            cases.extend(
                _fire_cases(
                    r,
                    fmin(r),
                    traffic_series(plan, fire, m),
                    traffic_series(plan, ok, m),
                    traffic_series(plan, zero, m),
                    burn,
                    extra={"cohort": "treatment"},
                )
            )

    if AlertName.WATCHDOG in by_name:
        (r,) = by_name[AlertName.WATCHDOG]
        cases.append(
            _case(
                f"{AlertName.WATCHDOG}: always firing",
                [],
                [
                    {"eval_time": "1m", "alertname": AlertName.WATCHDOG, "exp_alerts": [_expected(r, 1.0, {})]},
                ],
            )
        )
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": cases}
