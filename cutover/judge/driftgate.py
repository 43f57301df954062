"""Drift evidence: the gateway's drift gate, as its admin API or Prometheus reports it, turned into a
gate evidence file (`cutover evidence drift`).

Plain data in (the admin API's `/admin/status` answer, or the figures read from Prometheus), a
`DriftReading` out, and from it an `Evidence`: PROMOTE only when the gateway's own drift gate says
ready; otherwise HOLD with why (too few samples: how many of how many; drift above the threshold:
the figure and the threshold). The drift gate itself is the gateway's (`cutover.judge.drift`): this
module never decides readiness on figures of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cutover.judge.evidence import Check, Evidence, new_evidence
from cutover.plan.campaign import Campaign
from cutover.plan.errors import CutoverError
from cutover.plan.model import Plan


@dataclass(frozen=True)
class DriftReading:
    """The drift gate at one moment, as one source reported it."""

    source: str  # "admin" (the gateway's admin API) or "prometheus"
    url: str
    ready: bool  # the gateway's own verdict
    samples: int  # drift samples the figures stand on
    min_samples: int  # what the plan's gate needs
    threshold: float  # the plan's drift_max (mean parity drift)
    mean: float | None = None
    upper_bound: float | None = None  # the gate's upper confidence bound (admin API only)
    phase: str | None = None  # the phase the gateway reports
    stack: str | None = None  # the stack the gateway reports
    gate_reason: str = ""  # the gateway's own words, when it gives them
    figures: dict[str, Any] = field(default_factory=dict)  # everything read, for the evidence's details

    @property
    def passed(self) -> bool:
        """The gateway's drift gate is ready, on at least the plan's minimum samples."""
        return self.ready and self.samples >= self.min_samples

    def why_not(self) -> str:
        """Why the gate does not pass, in one line (empty when it does)."""
        if self.passed:
            return ""
        if self.samples < self.min_samples:
            return f"not enough drift samples: {self.samples} of {self.min_samples}"
        if self.upper_bound is not None and self.upper_bound >= self.threshold:
            return (
                f"drift above the threshold: upper bound of mean parity drift {self.upper_bound:.3f} >= "
                f"{self.threshold:g} (mean {_fmt(self.mean)}, {self.samples} samples)"
            )
        if self.mean is not None and self.mean >= self.threshold:
            return (
                f"drift above the threshold: mean parity drift {self.mean:.3f} >= {self.threshold:g} "
                f"({self.samples} samples)"
            )
        return (
            f"the gateway's drift gate is not ready (mean parity drift {_fmt(self.mean)}, threshold "
            f"{self.threshold:g}, {self.samples} samples): its window may be newer than these figures, "
            "e.g. after POST /admin/drift/restart"
        )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CutoverError(f"the gateway's status has no number for {what}: {value!r}")
    return float(value)


def from_status(status: dict[str, Any], plan: Plan, url: str, phase: str | None = None) -> DriftReading:
    """The drift gate as the admin API's `GET /admin/status` reports it (`cutover_ready`, `drift`).
    `phase`: the phase whose minimum samples apply (default: the one the gateway reports)."""
    try:
        gate, drift = status["cutover_ready"], status["drift"]
        ready, reason, samples = bool(gate["ready"]), str(gate["reason"]), int(drift["samples"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CutoverError(
            f"the answer of {url}/admin/status has no drift gate ({type(exc).__name__}: {exc})",
            fix="--admin is the gateway's admin port (cutover serve --admin-port), not its API port",
        ) from None
    reported = status.get("phase") if isinstance(status.get("phase"), str) else None
    eff = plan.effective(phase or reported or drift_phase(plan))
    mean, upper = drift.get("mean"), drift.get("upper_bound")
    threshold = drift.get("threshold")
    return DriftReading(
        source="admin",
        url=url,
        ready=ready,
        samples=samples,
        min_samples=eff.analysis.drift_gate_min_samples,
        threshold=eff.monitoring.drift_max if threshold is None else _number(threshold, "drift.threshold"),
        mean=None if mean is None else _number(mean, "drift.mean"),
        upper_bound=None if upper is None else _number(upper, "drift.upper_bound"),
        phase=reported,
        stack=status.get("stack") if isinstance(status.get("stack"), str) else None,
        gate_reason=reason,
        figures={"drift": drift, "cutover_ready": gate},
    )


def drift_phase(plan: Plan) -> str:
    """The phase whose exit needs drift evidence (the campaign's; shadow in the default plan): the
    settings a reading is held to when neither the caller nor the gateway names a phase."""
    campaign = Campaign(plan)
    return next((p for p in campaign.phases if "drift" in campaign.exit_evidence(p)), campaign.first)


def from_prometheus(
    figures: dict[str, float | None], plan: Plan, url: str, phase: str | None = None, reported: str | None = None
) -> DriftReading:
    """The drift gate as Prometheus holds it. `figures`: `ready` (the lowest drift-ready gauge of the
    gateways scraped, 1 or 0), `samples` and `sum` (parity drift histogram count and sum, over every
    gateway: cumulative since each started). `reported`: the phase the gateway's phase-info gauge names."""
    ready_gauge = figures.get("ready")
    if ready_gauge is None:
        raise CutoverError(
            f"Prometheus at {url} has no drift-ready series: it does not scrape a cutover gateway",
            fix="check the scrape target (the gateway's /metrics) and --selector",
        )
    samples = int(figures.get("samples") or 0)
    total = figures.get("sum")
    mean = total / samples if samples and total is not None else None
    eff = plan.effective(phase or reported or drift_phase(plan))
    ready = ready_gauge >= 1
    return DriftReading(
        source="prometheus",
        url=url,
        ready=ready,
        samples=samples,
        min_samples=eff.analysis.drift_gate_min_samples,
        threshold=eff.monitoring.drift_max,
        mean=mean,
        phase=reported,
        gate_reason=f"the gateway's drift gate says {'ready' if ready else 'not ready'} (drift-ready gauge "
        f"{ready_gauge:g}); {samples} parity drift samples observed, mean {_fmt(mean)}",
        figures={"ready_gauge": ready_gauge, "samples_observed": samples, "parity_drift_sum": total},
    )


def drift_evidence(reading: DriftReading, plan: Plan, stack: str, phase: str) -> Evidence:
    """The reading as gate evidence of `phase` for `stack`: PROMOTE when the gateway's drift gate is
    ready on the plan's minimum samples, HOLD (with why first among the reasons) when it is not."""
    why = reading.why_not()
    reasons = ([why] if why else []) + ([reading.gate_reason] if reading.gate_reason else [])
    enough = reading.samples >= reading.min_samples
    checks = [
        Check(
            name="drift_samples",
            status="pass" if enough else "fail",
            value=reading.samples,
            threshold=reading.min_samples,
            detail="drift samples behind the gate (shadow reads)",
        ),
    ]
    bound, label = (
        (reading.upper_bound, "upper confidence bound of mean parity drift")
        if reading.source == "admin"
        else (reading.mean, "mean parity drift")
    )
    checks.append(
        Check(
            name="parity_drift",
            status="nodata" if bound is None else ("pass" if bound < reading.threshold else "fail"),
            value=bound,
            threshold=reading.threshold,
            detail=label,
        )
    )
    return new_evidence(
        "drift",
        phase,
        "PROMOTE" if reading.passed else "HOLD",
        stack=stack,
        plan_digest=plan.digest(),
        reasons=reasons,
        checks=checks,
        samples={"treatment": reading.samples},
        details={
            "source": reading.source,
            "url": reading.url,
            "gateway_phase": reading.phase,
            "min_samples": reading.min_samples,
            "threshold": reading.threshold,
            "mean": reading.mean,
            "upper_bound": reading.upper_bound,
            **reading.figures,
        },
    )
