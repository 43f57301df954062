"""The methodology page's figure: why the judge compares cohorts within time windows.

    .venv/bin/python -m benchmarks.judge_figure [--out runbooks/load-testing/judge-windows.png]

Left: one simulated A/A canary under the load model calibrated on this machine (benchmarks/noise.py):
each window's median latency per cohort moves with the shared load, their ratio does not. Right: over
300 A/A runs whose cohort shares move over the run, where the median ratio falls, against the 98 %
interval a per-request test states and the one the judge states (within windows). With evenly
mixed cohorts both intervals cover (the shared load is the same for both); once the mix moves with
time the per-request comparison mistakes the load for a difference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from benchmarks.noise import load_factor
from cutover.judge.checks import judge_latency
from cutover.plan.model import Analysis

A = Analysis()
OUT = Path(__file__).resolve().parents[1] / "runbooks" / "load-testing" / "judge-windows.png"


def run(rng, n=2000, seconds=10.0, drift=False):
    """An A/A canary; with `drift` the cohorts' shares move over the run (treatment from few of the
    requests at the start to most at the end, as when the split changes or
    samples of runs at different times are pooled)."""
    ts_c, ts_t = np.sort(rng.uniform(0, seconds, n)), np.sort(rng.uniform(0, seconds, n))
    if drift:
        ts_t, ts_c = np.sort(seconds * rng.beta(2, 1, n)), np.sort(seconds * rng.beta(1, 2, n))
    load = load_factor(rng, seconds)
    c = rng.lognormal(np.log(40), 0.45, n) * load(ts_c)
    t = rng.lognormal(np.log(40), 0.45, n) * load(ts_t)
    return c, t, ts_c, ts_t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    c, t, ts_c, ts_t = run(rng)
    w = A.judge_windows
    edges = np.linspace(0, 10, w + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    mc = [np.median(c[(ts_c >= a) & (ts_c < b)]) for a, b in itertools.pairwise(edges)]
    mt = [np.median(t[(ts_t >= a) & (ts_t < b)]) for a, b in itertools.pairwise(edges)]
    ax1.plot(mid, mc, "o-", label="control, window median", color="#1f77b4")
    ax1.plot(mid, mt, "s-", label="treatment, window median", color="#d62728")
    ax1b = ax1.twinx()
    ax1b.plot(mid, np.array(mt) / np.array(mc), ":", color="black", label="ratio (right axis)")
    ax1b.set_ylim(0.5, 1.5)
    ax1b.set_ylabel("treatment / control")
    ax1.set(title=f"one A/A canary, {w} windows of 0.5 s", xlabel="s", ylabel="ms")
    ax1.legend(loc="upper left", fontsize=8)
    ax1b.legend(loc="upper right", fontsize=8)
    ratios, judge_half, request_half = [], [], []
    for _ in range(300):
        c, t, ts_c, ts_t = run(rng, drift=True)
        f = judge_latency("recall_latency", c, t, A, ts_c, ts_t).figures
        ratios.append(np.log(f["median_ratio"]))
        lo, hi = f["median_ratio_interval"]
        judge_half.append((np.log(hi) - np.log(lo)) / 2)
        # a per-request interval: the two medians' standard errors as if requests were independent
        se = np.sqrt(sum((1.2533 * np.std(np.log(x)) / np.sqrt(len(x))) ** 2 for x in (c, t)))
        request_half.append(stats.norm.ppf(0.99) * se)
    ax2.hist(np.exp(ratios), bins=30, color="#7f7f7f", alpha=0.7, label="median ratio over 300 A/A runs")
    for half, name, color in ((request_half, "per request", "#ff7f0e"), (judge_half, "within windows", "#2ca02c")):
        h = float(np.median(half))
        ax2.axvspan(np.exp(-h), np.exp(h), color=color, alpha=0.25, label=f"98 % interval stated {name}")
    lo, hi = np.quantile(np.exp(ratios), [0.01, 0.99])
    ax2.axvline(lo, color="black", ls="--", lw=0.8, label="1 % and 99 % of the runs")
    ax2.axvline(hi, color="black", ls="--", lw=0.8)
    ax2.set(title="A/A, cohort shares moving over the run", xlabel="treatment / control median")
    ax2.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
