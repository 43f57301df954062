"""Decision quality of the judge, under independent and under time-correlated noise, and on a
replay of real A/A samples captured on this machine. Prints a table; not a test.

    make bench-judge
    .venv/bin/python -m benchmarks.judge_simulation [--runs 1000] [--old-runs 200]

Latencies: lognormal body (median 40 ms, sigma 0.45) with a heavy tail (3 % of requests drawn from a
lognormal with median 120 ms, sigma 0.8); control and treatment requests spread evenly over a 10 s
run, 2 000 per cohort unless the case says otherwise, 0.1 % errors in each.

- iid: every request independent (what the old judge assumed).
- correlated: every latency times a load factor shared by all requests in flight that drifts and
  jumps (benchmarks/noise.py: calibrated on this machine; the table's first line compares).
- replay: the control cohorts of rehearsal runs on this machine (benchmarks/aa-capture.csv.gz; how
  to make a new one: benchmarks/capture_aa.py), their agents split at random into two groups: an
  A/A with the machine's real noise; the effect cases multiply one group's latencies.

Each case compares today's judge (cutover.judge.verdict and stats: within time windows, median and slowest 5 %
apart) with the judge before (benchmarks/old_judge.py: per request). "Detected" is any verdict but
PROMOTE (HOLD or ROLLBACK); on the A/A rows that is a false alarm. The soak rows judge simulated
20 s soaks (judge_soak) under the correlated noise.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import old_judge
from benchmarks.noise import calibration, load_factor, window_median_sd
from cutover.judge.checks import judge_errors, judge_latency
from cutover.judge.samples import Sample
from cutover.judge.soak import judge_soak
from cutover.judge.verdict import decide
from cutover.plan.model import Analysis, load_plan

A = Analysis()
SECONDS = 10.0
CAPTURE = Path(__file__).with_name("aa-capture.csv.gz")

# name, requests per cohort, target (share not PROMOTE; "<=" for false alarms), target of ROLLBACK
CASES = [
    ("A/A", 2000, "<= 2 %", "<= 0.5 %"),
    ("+10% median", 2000, ">= 95 %", ""),
    ("+30% slowest 5%", 2000, ">= 95 %", ""),
    ("errors 0.1% -> 0.6%", 2000, ">= 80 %", ""),
    ("errors 0.1% -> 0.6%", 5000, ">= 95 %", ""),
    ("3% cohort imbalance", 20000, ">= 99 %", ""),  # the split test is the same in both judges
]


def latencies(rng, n):
    body = rng.lognormal(np.log(40), 0.45, n)
    tail = rng.lognormal(np.log(120), 0.8, n)
    return np.where(rng.random(n) < 0.03, tail, body)


def slowest(x, factor=1.3, share=0.05):
    cut = np.quantile(x, 1 - share)
    return np.where(x > cut, x * factor, x)


def case(rng, kind, n, noise):
    nc = nt = n
    if kind == "3% cohort imbalance":
        nt = rng.binomial(2 * n, 0.5 * 0.97)  # the treatment gets 3 % fewer requests than configured
        nc = 2 * n - nt
    c_ts, t_ts = np.sort(rng.uniform(0, SECONDS, nc)), np.sort(rng.uniform(0, SECONDS, nt))
    c_lat, t_lat = latencies(rng, nc), latencies(rng, nt)
    if kind == "+10% median":
        t_lat = t_lat * 1.10
    elif kind == "+30% slowest 5%":
        t_lat = slowest(t_lat)
    if noise == "correlated":
        load = load_factor(rng, SECONDS)
        c_lat, t_lat = c_lat * load(c_ts), t_lat * load(t_ts)
    t_err = 0.006 if kind.startswith("errors") else 0.001
    return c_lat, t_lat, c_ts, t_ts, rng.random(nc) >= 0.001, rng.random(nt) >= t_err


def verdict(judge, rng, c_lat, t_lat, c_ts, t_ts, c_ok, t_ok, units=None) -> str:
    if judge == "new":
        lat = judge_latency("recall_latency", c_lat, t_lat, A, c_ts, t_ts)
    else:
        lat = old_judge.judge_latency("recall_latency", c_lat, t_lat, A, rng)
    metrics = [lat, judge_errors("recall_errors", c_ok, t_ok, A)]
    n = {"control": len(c_lat), "treatment": len(t_lat)}
    return decide(metrics, n, 0.5, A, srm_n=units).verdict


def rates(verdicts: list[str]) -> tuple[float, float]:
    n = max(len(verdicts), 1)
    return sum(v != "PROMOTE" for v in verdicts) / n, sum(v == "ROLLBACK" for v in verdicts) / n


def met(target: str, value: float) -> str:
    if not target:
        return ""
    bound = float(target.split()[1]) / 100
    ok = value <= bound if target.startswith("<=") else value >= bound
    return "met" if ok else "MISSED"


def load_capture(path: Path = CAPTURE) -> dict[str, np.ndarray]:
    """Successful recalls per segment: columns ts, agent, latency."""
    seg: dict[str, list] = defaultdict(list)
    with gzip.open(path, "rt") as f:
        for r in csv.DictReader(f):
            if r["op"] == "r" and r["ok"] == "1":
                seg[r["segment"]].append((float(r["ts"]), int(r["agent"]), float(r["latency_ms"])))
    return {k: np.array(v) for k, v in seg.items()}


def replay(rng, segments, kind, judge, splits):
    """A/A splits of the captured segments with at least 2 x 2 000 recalls (agents at random to two
    groups of equal expected size); `kind` multiplies one group's latencies."""
    out = []
    for d in segments.values():
        if len(d) < 4000:
            continue
        ts, agent, lat = d[:, 0], d[:, 1].astype(int), d[:, 2]
        for _ in range(splits):
            group = rng.random(agent.max() + 1) < 0.5
            t = group[agent]
            seen = np.unique(agent)
            units = {"control": int((~group[seen]).sum()), "treatment": int(group[seen].sum())}
            c_lat, t_lat = lat[~t], lat[t]
            if kind == "+10% median":
                t_lat = t_lat * 1.10
            elif kind == "+30% slowest 5%":
                t_lat = slowest(t_lat)
            ok_c, ok_t = np.ones(len(c_lat), bool), np.ones(len(t_lat), bool)
            out.append(verdict(judge, rng, c_lat, t_lat, ts[~t], ts[t], ok_c, ok_t, units))
    return out


def soak_samples(rng, creep=0.0, seconds=20.0, rate=150.0):
    n = int(seconds * rate)
    ts = np.sort(rng.uniform(0, seconds, n))
    ops = np.where(rng.random(n) < 0.7, "recall", "remember")  # the production mix: 30 % writes
    creeping = (ops == "recall") * math.log1p(creep) * ts / seconds  # the read path creeps, writes do not
    lat = 4.0 * load_factor(rng, seconds)(ts) * np.exp(rng.normal(0, 0.35, n) + creeping)
    out = [Sample(float(t), "control", str(o), float(x), True) for t, o, x in zip(ts, ops, lat, strict=True)]
    out += [Sample(float(t), "control", "probe", 0.0, True, rss_mb=200.0) for t in range(0, int(seconds) + 1, 2)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000, help="simulated canaries per case, today's judge")
    ap.add_argument("--old-runs", type=int, default=200, help="the same for the judge before (slower)")
    ap.add_argument("--splits", type=int, default=40, help="random A/A splits per captured segment")
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    t0 = time.monotonic()
    cal = calibration(rng)
    segments = load_capture() if CAPTURE.exists() else {}
    captured = [window_median_sd(d[:, 0], d[:, 2], 20) for d in segments.values()]
    print(
        f"judge decision quality; alpha {A.alpha}; median allowed +{A.median_regression_max:.0%} (critical "
        f"+{A.median_regression_critical:.0%}), tail p95-p98 allowed +{A.tail_regression_max:.0%} (critical "
        f"+{A.tail_regression_critical:.0%}), {A.judge_windows} time windows; SRM p < {A.srm_p}"
    )
    print(
        f"noise: sd of the log median of 0.5 s windows, model {cal['0.5 s']:.3f}; captured here "
        + (f"{np.median(captured):.3f} (median of {len(captured)} runs)" if captured else "(no capture)")
    )
    print()
    head = f"{'case':<22} {'n/cohort':>8} {'noise':<10} {'today: not PROMOTE':>18} {'ROLLBACK':>9} "
    head += f"{'before: not PROMOTE':>19} {'ROLLBACK':>9}  target (not PROMOTE; ROLLBACK)"
    print(head)
    print("-" * len(head))
    for name, n, target, rb_target in CASES:
        for noise in ("iid", "correlated"):
            row = {}
            same = name == "3% cohort imbalance"  # one test, decide(); the latency judges are not asked
            for judge, runs in (("new", args.runs), ("old", 0 if same else args.old_runs)):
                vs = [verdict(judge, rng, *case(rng, name, n, noise)) for _ in range(runs)]
                row[judge] = rates(vs) if vs else (math.nan, math.nan)
            (np_new, rb_new), (np_old, rb_old) = row["new"], row["old"]
            verdicts = f"{met(target, np_new)}" + (f", {met(rb_target, rb_new)}" if rb_target else "")
            old_cols = "(same test)".rjust(29) if same else f"{np_old:>19.1%} {rb_old:>9.1%}"
            print(
                f"{name:<22} {n:>8} {noise:<10} {np_new:>18.1%} {rb_new:>9.1%} {old_cols}  "
                f"{target}{'; ' + rb_target if rb_target else ''}: {verdicts}"
            )
    if segments:
        usable = sum(len(d) >= 4000 for d in segments.values())
        for name, target, rb_target in (
            ("A/A", "<= 2 %", "<= 0.5 %"),
            ("+10% median", ">= 95 %", ""),
            ("+30% slowest 5%", ">= 95 %", ""),
        ):
            new = rates(replay(rng, segments, name, "new", args.splits))
            old = rates(replay(rng, segments, name, "old", max(1, args.splits // 5)))
            verdicts = f"{met(target, new[0])}" + (f", {met(rb_target, new[1])}" if rb_target else "")
            print(
                f"{name:<22} {'>=2000':>8} {'replay':<10} {new[0]:>18.1%} {new[1]:>9.1%} {old[0]:>19.1%} "
                f"{old[1]:>9.1%}  {target}{'; ' + rb_target if rb_target else ''}: {verdicts}"
            )
        print(f"(replay: {usable} captured runs with >= 4 000 recalls, {args.splits} random splits each)")
    plan = load_plan(Path(__file__).resolve().parents[1] / "rollout.yaml")
    eff = plan.effective("pre-deployment")
    for name, creep, target in (("soak A/A", 0.0, "<= 2 %"), ("soak +50% creep", 0.5, ">= 95 %")):
        vs = [
            judge_soak(
                soak_samples(rng, creep),
                eff.analysis,
                eff.abort_triggers.error_rate,
                eff.monitoring.recall_p99_ms,
                eff.monitoring.recall_availability,
            ).verdict
            for _ in range(args.runs)
        ]
        held = rates(vs)[0]
        blank = " " * 39
        print(f"{name:<22} {'3000':>8} {'correlated':<10} {held:>18.1%} {blank}  {target}: {met(target, held)}")
    print(f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
