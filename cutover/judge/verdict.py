"""The judge: canary (treatment) versus control, from per-request samples, to a verdict.

Latency: control and treatment requests run at the same moments on the same machine, so the run is
cut into time windows and compared within them (`windowed_ratios`): the median ratio (each cohort's
middle half) and the tail ratio (each cohort's p95-p98 band) with one-sided bounds counted in
windows; the plan's allowed and critical increases for each. Errors: a one-sided Fisher exact test
(exact at small counts, so new errors against a zero baseline fail) with a Newcombe interval for the
difference. Recall quality: on complete answers (fewer than k records), the treatment's agreement
with control relative to control's agreement with itself (the noise floor); the ranking change
(top-k overlap, rank-biased overlap) is reported apart. Sample-ratio mismatch (chi-square against the
configured split, on agents when the samples carry them) voids the verdict. A cohort under the
plan's minimum samples is NoData, and NoData never passes. A sequential, always-valid guardrail
(mixture SPRT) is reported beside the verdict.

Verdict: ROLLBACK when any metric is critically worse; HOLD when any is worse than allowed, has no
data, or the comparison is void; PROMOTE otherwise. Every reason is listed.

The parts: samples (input), stats, checks (one metric each), soak; this module puts the
checks together into a verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cutover.judge.checks import (
    CRITICAL,
    HIGH,
    LOW,
    MIN_OVERLAP_PAIRS,
    NODATA,
    PASS,
    MetricResult,
    judge_errors,
    judge_latency,
    judge_overlap,
    sample_ratio,
)
from cutover.judge.evidence import Verdict as Decision
from cutover.judge.samples import Sample, answer_pairs, complete_answers
from cutover.judge.stats import msprt
from cutover.plan.model import Analysis


@dataclass
class Verdict:
    verdict: Decision
    score: float
    reasons: list[str]
    metrics: list[MetricResult]
    srm_p: float
    samples: dict[str, Any]
    sequential: dict[str, Any]
    source: str = "per-request samples"  # where the data came from (`cutover.judge.binned`: Prometheus)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "score": self.score,
            "reasons": self.reasons,
            "srm_p": self.srm_p,
            "samples": self.samples,
            "sequential": self.sequential,
            "source": self.source,
            "metrics": [asdict(m) for m in self.metrics],
        }


def missing_samples(samples: Sequence[Sample], a: Analysis, ops: Sequence[str] = ("recall", "remember")) -> list[str]:
    """What a verdict still lacks: each cohort and operation below `a.min_samples` successful
    requests, and too few queries answered in both cohorts; empty when `judge` has enough."""
    missing = []
    for op in ops:
        for cohort in ("control", "treatment"):
            n = sum(1 for s in samples if s.cohort == cohort and s.op == op and s.ok)
            if n < a.min_samples:
                missing.append(f"{op} {cohort}: {n} of {a.min_samples}")
    pairs = len(complete_answers(answer_pairs(samples)[0], a.top_k))
    if pairs < MIN_OVERLAP_PAIRS:
        missing.append(
            f"recall overlap: {pairs} of {MIN_OVERLAP_PAIRS} complete answers to queries answered in both cohorts"
        )
    return missing


def judge(
    samples: Sequence[Sample],
    a: Analysis,
    treatment_share: float = 0.5,
    seed: int = 0,
    ops: Sequence[str] = ("recall", "remember"),
    overlap: bool = True,
) -> Verdict:
    rng = np.random.default_rng(seed)
    by = {(c, o): [s for s in samples if s.cohort == c and s.op == o] for c in ("control", "treatment") for o in ops}
    n = {c: sum(1 for s in samples if s.cohort == c) for c in ("control", "treatment")}
    metrics: list[MetricResult] = []
    for op in ops:
        c = [s for s in by[("control", op)] if s.ok]
        t = [s for s in by[("treatment", op)] if s.ok]
        metrics.append(
            judge_latency(
                f"{op}_latency",
                np.array([s.latency_ms for s in c]),
                np.array([s.latency_ms for s in t]),
                a,
                np.array([s.ts for s in c]),
                np.array([s.ts for s in t]),
                ops=len(ops),
            )
        )
        metrics.append(
            judge_errors(
                f"{op}_errors",
                np.array([s.ok for s in by[("control", op)]]),
                np.array([s.ok for s in by[("treatment", op)]]),
                a,
            )
        )
    if overlap:
        pairs, floor = answer_pairs(samples)
        metrics.append(judge_overlap(pairs, a, rng, floor_pairs=floor))
    # Sample-ratio mismatch is tested on the unit of randomization: distinct targeting keys when the
    # samples carry them (requests of one agent are not independent draws of the split).
    units = {c: {s.agent for s in samples if s.cohort == c and s.agent} for c in ("control", "treatment")}
    srm_n = {c: len(u) for c, u in units.items()} if all(units.values()) else n
    return decide(metrics, n, treatment_share, a, samples, srm_n)


def decide(
    metrics: list[MetricResult],
    n: dict[str, Any],
    treatment_share: float,
    a: Analysis,
    samples: Sequence[Sample] = (),
    srm_n: dict[str, Any] | None = None,
) -> Verdict:
    srm_n = srm_n or n
    srm = sample_ratio(srm_n["control"], srm_n["treatment"], treatment_share)
    reasons = [r for m in metrics for r in m.reasons]
    seq = sequential_guardrail(samples, a) if samples else {}
    if srm < a.srm_p:
        unit = "agents" if srm_n is not n else "requests"
        reasons.insert(
            0,
            f"sample-ratio mismatch: {srm_n['control']} control vs {srm_n['treatment']} treatment {unit} against a "
            f"configured treatment share of {treatment_share:.0%} (chi-square p={srm:.2g} < {a.srm_p}): "
            "comparison void",
        )
    classes = [m.classification for m in metrics]
    passed = sum(1 for c in classes if c in (PASS, LOW))
    score = round(100 * passed / len(classes), 1) if classes else 0.0
    verdict: Decision
    if srm < a.srm_p:
        verdict = "HOLD"
    elif CRITICAL in classes:
        verdict = "ROLLBACK"
    elif HIGH in classes or NODATA in classes or not classes:
        verdict = "HOLD"
    else:
        verdict = "PROMOTE"
    if verdict == "PROMOTE":
        reasons.append(f"all {len(classes)} checks pass (score {score})")
    return Verdict(verdict, score, reasons, metrics, srm, n, seq)


def sequential_guardrail(samples: Sequence[Sample], a: Analysis, op: str = "recall") -> dict[str, Any]:
    """Always-valid p-values of the latency (log) and error guardrails over all samples so far."""
    c = [s for s in samples if s.cohort == "control" and s.op == op]
    t = [s for s in samples if s.cohort == "treatment" and s.op == op]
    lat = msprt(
        np.log([max(s.latency_ms, 1e-6) for s in c if s.ok] or [1.0]),
        np.log([max(s.latency_ms, 1e-6) for s in t if s.ok] or [1.0]),
        tau=0.1,
    )
    err = msprt(
        np.array([0.0 if s.ok else 1.0 for s in c] or [0.0]),
        np.array([0.0 if s.ok else 1.0 for s in t] or [0.0]),
        tau=0.01,
    )
    return {"latency_p": lat, "errors_p": err, "alarm": bool(min(lat, err) < a.alpha)}


def judge_baseline(samples: Sequence[Sample], a: Analysis) -> Verdict:
    """Phase 0: the legacy path's figures under load; PROMOTE once there are enough samples."""
    rec = np.array([s.latency_ms for s in samples if s.op == "recall" and s.ok])
    n_all = sum(1 for s in samples if s.op in ("recall", "remember"))
    errors = sum(1 for s in samples if s.op in ("recall", "remember") and not s.ok)
    m = MetricResult("baseline", PASS, n_all, 0)
    if len(rec) < a.min_samples:
        m.classification = NODATA
        m.reasons.append(f"baseline: {len(rec)} successful recalls, {a.min_samples} needed")
    else:
        m.figures = {
            "recall_p50_ms": float(np.median(rec)),
            "recall_p95_ms": float(np.quantile(rec, 0.95)),
            "recall_p99_ms": float(np.quantile(rec, 0.99)),
            "error_rate": errors / max(n_all, 1),
            "requests": n_all,
        }
    verdict: Decision = "PROMOTE" if m.classification == PASS else "HOLD"
    reasons = m.reasons or [
        f"baseline captured: recall p50 {m.figures['recall_p50_ms']:.1f} ms, p99 "
        f"{m.figures['recall_p99_ms']:.1f} ms, error rate {m.figures['error_rate']:.3%} over {n_all} requests"
    ]
    return Verdict(verdict, 100.0 if verdict == "PROMOTE" else 0.0, reasons, [m], 1.0, {"control": n_all}, {})
