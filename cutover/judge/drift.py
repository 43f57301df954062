"""Drift between two stores' answers to the same recall, and the drift gate's readiness.

Two different things are measured per shadow read:

- **Parity drift** (the gate's measure): the share of records that one store returns and the other
  does not hold identically under the same filter. Legacy's top k are looked up in MemoryOS and
  MemoryOS's top k in legacy, each asked for exactly those ids (`RecallQuery.ids`), so the measure
  does not depend on how either store ranks: at full data parity it is 0 however differently they
  order a query's matches. A record counts as held only with the same content (`content_key`: id,
  version and a digest of the fields a recall returns), so a missing, an altered and a stale record
  (deleted on one side only) all count.
- **Ranking change** (reported, never gating): Jaccard distance of the two top-k id lists and
  1 - rank-biased overlap (Webber et al. 2010, extrapolated RBO) with persistence p. MemoryOS ranks
  by relevance, heat, recency and tier and legacy newest first, so this is large by design.

Readiness uses an upper confidence bound of the mean parity drift, not the maximum: one outlier
cannot block cutover forever.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


def jaccard_distance(a: Sequence[str], b: Sequence[str], k: int) -> float:
    sa, sb = set(a[:k]), set(b[:k])
    if not sa and not sb:
        return 0.0
    return 1.0 - len(sa & sb) / len(sa | sb)


def rbo(a: Sequence[str], b: Sequence[str], p: float, k: int | None = None) -> float:
    """Extrapolated rank-biased overlap of two rankings (1 = same ranking, 0 = disjoint)."""
    a, b = list(a[:k] if k else a), list(b[:k] if k else b)
    if not a and not b:
        return 1.0
    depth = max(len(a), len(b))
    seen_a, seen_b, overlap, total = set(), set(), 0, 0.0
    for d in range(1, depth + 1):
        if d <= len(a):
            x = a[d - 1]
            overlap += x in seen_b
            seen_a.add(x)
        if d <= len(b):
            y = b[d - 1]
            overlap += y in seen_a
            seen_b.add(y)
        total += (overlap / d) * p**d
    return min(1.0, (overlap / depth) * p**depth + (1 - p) / p * total)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    samples: int
    mean: float | None
    upper_bound: float | None
    threshold: float
    min_samples: int
    reason: str


def _readiness(
    n: int, mean: float | None, var: float, min_samples: int, threshold: float, confidence: float
) -> Readiness:
    if n == 0 or n < min_samples:
        return Readiness(False, n, mean, None, threshold, min_samples, f"{n} drift samples, {min_samples} needed")
    upper = float(mean + stats.t.ppf(confidence, max(n - 1, 1)) * math.sqrt(var / n))
    ok = bool(upper < threshold)
    return Readiness(
        ok,
        n,
        mean,
        upper,
        threshold,
        min_samples,
        f"upper {confidence:.0%} bound of mean drift {upper:.3f} {'<' if ok else '>='} {threshold:g} over {n} samples",
    )


class DriftWindow:
    """The newest `size` drift samples with running sums: adding a sample costs O(1) and the gate's
    mean and variance need no pass over the samples (the gateway adds one per shadow read, in the
    process that serves the requests). The sums are recomputed from the window every `size` samples,
    so rounding cannot accumulate."""

    def __init__(self, size: int = 100_000):
        self._size = size
        self._values: deque[float] = deque(maxlen=size)
        self._sum = self._sumsq = 0.0
        self._since_exact = 0

    def add(self, x: float) -> None:
        if len(self._values) == self._size:
            old = self._values[0]
            self._sum -= old
            self._sumsq -= old * old
        self._values.append(x)
        self._sum += x
        self._sumsq += x * x
        self._since_exact += 1
        if self._since_exact >= self._size:
            self._sum, self._sumsq = math.fsum(self._values), math.fsum(v * v for v in self._values)
            self._since_exact = 0

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        """Start a new window (after parity was repaired: the old samples describe stores that no
        longer exist)."""
        self._values.clear()
        self._sum = self._sumsq = 0.0
        self._since_exact = 0

    def readiness(self, min_samples: int, threshold: float, confidence: float = 0.95) -> Readiness:
        n = len(self._values)
        mean = self._sum / n if n else None
        var = 0.0
        if mean is not None and n > 1:
            var = max(0.0, (self._sumsq - self._sum * mean) / (n - 1))
        return _readiness(n, mean, var, min_samples, threshold, confidence)


def pair_drift(legacy: Sequence[str], candidate: Sequence[str], k: int, p: float) -> tuple[float, float]:
    """One shadow read's ranking change: (Jaccard distance over the top k, 1 - rank-biased overlap)."""
    return jaccard_distance(legacy, candidate, k), 1 - rbo(legacy, candidate, p, k)


def parity_drift(
    legacy_top: dict[str, str], held: dict[str, str], candidate_top: dict[str, str], held_back: dict[str, str]
) -> float:
    """One shadow read's parity drift, 0 (both stores hold every record either returned, identically)
    to 1. Each argument maps id -> content key: legacy's top k, what MemoryOS holds of those ids under
    the same filter, MemoryOS's top k, what legacy holds of those. A record counts once, over the union
    of the two answers' ids."""
    ids = legacy_top.keys() | candidate_top.keys()
    if not ids:
        return 0.0
    differs = {i for i, key in legacy_top.items() if held.get(i) != key}
    differs |= {i for i, key in candidate_top.items() if held_back.get(i) != key}
    return len(differs) / len(ids)
