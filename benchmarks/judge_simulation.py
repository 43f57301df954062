"""Decision quality of the judge, by simulation. Prints a table; not a test.

    make bench-judge
    .venv/bin/python -m benchmarks.judge_simulation [--runs 1000]    (the same, from the repository root)

Latencies: lognormal body (median 40 ms, sigma 0.45) with a heavy tail (3 % of requests drawn from a
lognormal with median 120 ms, sigma 0.8). Each case runs `--runs` simulated canaries at 2 000 samples
per cohort unless the case says otherwise, and compares our judge with (a) Welch's t-test on per-interval
p99 at p < 0.05 (20 intervals; the method of the original dual-memory runbook) and (b) a fixed threshold
on the treatment's p99 (Flagger's method; threshold: the control's true p99 plus the allowed 5 %).
"Detected" means the verdict is not PROMOTE (HOLD or ROLLBACK); the A/A rows are false alarms.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from cutover.judge.verdict import decide, judge_errors, judge_latency, msprt
from cutover.plan.model import Analysis

A = Analysis()


def latencies(rng, n, scale=1.0):
    body = rng.lognormal(np.log(40), 0.45, n)
    tail = rng.lognormal(np.log(120), 0.8, n)
    return np.where(rng.random(n) < 0.03, tail, body) * scale


TRUE_P99 = float(np.quantile(latencies(np.random.default_rng(99), 2_000_000), 0.99))


def tail_regression(x, factor=1.3, share=0.05):
    cut = np.quantile(x, 1 - share)
    return np.where(x > cut, x * factor, x)


def case(rng, kind, n):
    c_lat, t_lat = latencies(rng, n), latencies(rng, n)
    c_err, t_err = 0.001, 0.001
    nc, nt = n, n
    if kind == "+10% every quantile":
        t_lat = t_lat * 1.10
    elif kind == "tail-only +30% (slowest 5%)":
        t_lat = tail_regression(t_lat)
    elif kind.startswith("errors 0.1% -> 0.6%"):
        t_err = 0.006
    elif kind.startswith("3% cohort imbalance"):
        total = 2 * n
        nt = rng.binomial(total, 0.5 * 0.97)  # the treatment gets 3 % fewer requests than configured
        nc = total - nt
        c_lat, t_lat = latencies(rng, nc), latencies(rng, nt)
    c_ok, t_ok = rng.random(nc) >= c_err, rng.random(nt) >= t_err
    return c_lat, t_lat, c_ok, t_ok


def ours(rng, c_lat, t_lat, c_ok, t_ok):
    metrics = [judge_latency("recall_latency", c_lat, t_lat, A, rng), judge_errors("recall_errors", c_ok, t_ok, A)]
    return decide(metrics, {"control": len(c_lat), "treatment": len(t_lat)}, 0.5, A).verdict


def welch_interval_p99(c_lat, t_lat, intervals=20):
    pc = [np.quantile(x, 0.99) for x in np.array_split(c_lat, intervals)]
    pt = [np.quantile(x, 0.99) for x in np.array_split(t_lat, intervals)]
    return stats.ttest_ind(pt, pc, equal_var=False).pvalue < 0.05


def flagger_threshold(t_lat):
    return np.quantile(t_lat, 0.99) > TRUE_P99 * (1 + A.p99_regression_max)


def sequential_aa(rng, runs, looks=20, n=2000):
    """A/A with 20 interim looks: share of runs where the guardrail ever alarms (target <= 5 % at alpha 5 %)."""
    alarms = 0
    for _ in range(runs):
        c, t = np.log(latencies(rng, n)), np.log(latencies(rng, n))
        step = n // looks
        if any(msprt(c[: k * step], t[: k * step], tau=0.1) < 0.05 for k in range(1, looks + 1)):
            alarms += 1
    return alarms / runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    cases = [
        ("A/A", 2000, "false alarm"),
        ("+10% every quantile", 2000, ">= 95 %"),
        ("tail-only +30% (slowest 5%)", 2000, ">= 95 %"),
        ("errors 0.1% -> 0.6% @2000", 2000, ">= 80 %"),
        ("errors 0.1% -> 0.6% @5000", 5000, ">= 95 %"),
        ("3% cohort imbalance @2000", 2000, ">= 99 %"),
        ("3% cohort imbalance @20000", 20000, "(larger n)"),
    ]
    print(
        f"judge decision quality: {args.runs} simulated canaries per case; alpha {A.alpha}, allowed p99 regression "
        f"{A.p99_regression_max:.0%}, critical {A.p99_regression_critical:.0%}, SRM p < {A.srm_p}"
    )
    print(
        f"{'case':<30} {'n/cohort':>8} {'ours: not PROMOTE':>18} {'ours: ROLLBACK':>15} "
        f"{'Welch p99':>10} {'Flagger':>8}  target"
    )
    t0 = time.monotonic()
    for name, n, target in cases:
        kind = name.split(" @")[0]
        not_promote = rollback = welch = flagger = 0
        for _ in range(args.runs):
            c_lat, t_lat, c_ok, t_ok = case(rng, kind, n)
            v = ours(rng, c_lat, t_lat, c_ok, t_ok)
            not_promote += v != "PROMOTE"
            rollback += v == "ROLLBACK"
            welch += bool(welch_interval_p99(c_lat, t_lat))
            flagger += bool(flagger_threshold(t_lat))
        r = args.runs
        print(
            f"{name:<30} {n:>8} {not_promote / r:>18.1%} {rollback / r:>15.1%} "
            f"{welch / r:>10.1%} {flagger / r:>8.1%}  {target}"
        )
    seq = sequential_aa(rng, min(args.runs, 1000))
    print(
        f"{'A/A, 20 interim looks (mSPRT)':<30} {2000:>8} {seq:>18.1%} {'':>15} {'':>10} {'':>8}  <= 5 % (alpha 0.05)"
    )
    print(f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
