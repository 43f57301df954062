"""Noise like this machine's, for judging the judge: a load factor shared by every request in flight
that drifts and jumps (time-correlated), on top of each request's own latency.

Measured on the 2-core shared machine (rehearsal control cohorts, benchmarks/aa-capture.csv.gz, 19
runs of 10-12 s at 400-900 recalls/s): the standard deviation of the log median of 0.5 s windows
was 0.05-0.16 (median 0.10) where independent requests would give 0.03; of 1 s windows 0.05-0.12,
of 0.25 s windows 0.10-0.18; neighbouring windows correlated 0-0.7. The model: the logarithm of
the load factor is the sum of a fast AR(1) walk on a 50 ms grid (phi 0.7, stationary sd 0.12), a
slow AR(1) walk per second (phi 0.6, steps sd 0.04) and a jump of +/-15 % in 3 % of the seconds
that decays with the slow walk. `calibration()` prints the same statistics for the model.
"""

from __future__ import annotations

import numpy as np

STEP_S = 0.05


def load_factor(rng: np.random.Generator, seconds: float):
    """A function of time (seconds from 0 to `seconds`) giving the shared load factor (1 = calm)."""
    n_fast = int(seconds / STEP_S) + 2
    fast = np.zeros(n_fast)
    sd = 0.12 * np.sqrt(1 - 0.7**2)
    fast[0] = rng.normal(0, 0.12)
    shocks = rng.normal(0, sd, n_fast)
    for i in range(1, n_fast):
        fast[i] = 0.7 * fast[i - 1] + shocks[i]
    n_slow = int(seconds) + 2
    slow = np.zeros(n_slow)
    for i in range(1, n_slow):
        jump = rng.choice([-0.15, 0.15]) if rng.random() < 0.03 else 0.0
        slow[i] = 0.6 * slow[i - 1] + rng.normal(0, 0.04) + jump

    def at(ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts, float)
        return np.exp(fast[(ts / STEP_S).astype(int)] + slow[ts.astype(int)])

    return at


def window_median_sd(ts: np.ndarray, latency: np.ndarray, windows: int) -> float:
    """Standard deviation of the log median latency of equal time windows."""
    w = np.minimum(windows - 1, ((ts - ts.min()) / max(np.ptp(ts), 1e-9) * windows).astype(int))
    return float(np.std([np.median(np.log(latency[w == i])) for i in range(windows) if (w == i).any()]))


def calibration(rng: np.random.Generator, seconds: float = 10, rate: float = 600, runs: int = 40) -> dict:
    """The model's sd of 0.5 s (and 1 s) window medians, median over `runs` runs: compare with the
    capture's (module docstring)."""
    half, one = [], []
    for _ in range(runs):
        ts = np.sort(rng.uniform(0, seconds, int(seconds * rate)))
        lat = 3.3 * load_factor(rng, seconds)(ts) * np.exp(rng.normal(0, 0.40, len(ts)))
        half.append(window_median_sd(ts, lat, int(seconds / 0.5)))
        one.append(window_median_sd(ts, lat, int(seconds)))
    return {"0.5 s": float(np.median(half)), "1 s": float(np.median(one))}
