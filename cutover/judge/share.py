"""The treatment share a comparison expects: the sample-ratio test checks the split against it."""

from __future__ import annotations

from cutover.plan.model import EffectivePhase

NO_SPLIT_SHARE = 0.5  # a phase without a split (all or none treated): judge the cohorts as an even split


def expected_share(eff: EffectivePhase, configured: float | None = None) -> float:
    """`configured` when given, else the phase's treatment percentage; a share of 0 or 1 (no split to
    compare) becomes an even split."""
    share = configured if configured is not None else eff.phase.flags.treatment.percentage / 100
    return share if 0 < share < 1 else NO_SPLIT_SHARE
