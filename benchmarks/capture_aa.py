"""Capture real A/A samples from rehearsal runs on this machine, for `make bench-judge` to replay.

    .venv/bin/python -m benchmarks.capture_aa out/repeat/*/rehearsal [--out benchmarks/aa-capture.csv.gz]

Make a new capture: run `make rehearse` (or `make rehearse-repeat RUNS=3`) on the machine whose noise
you want, then point this at the rehearsal folders. It keeps the control cohort's requests of every
judged phase (`samples/<phase>/*.jsonl`: canary, ramps, regression runs) and of the baseline: all on
the legacy path, so any split of their agents into two groups is an A/A comparison with the
machine's real, time-correlated noise (both groups ran at the same moments, on the same code). One
segment per Locust run; columns: segment, ts (seconds from the segment's start), agent, op, latency
(ms), ok. About 20 bytes a request compressed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

from cutover.judge.samples import load_samples

DEFAULT = Path(__file__).with_name("aa-capture.csv.gz")


def segments(rehearsal: Path) -> list[tuple[str, Path]]:
    run = rehearsal.parent.name
    found = [(f"{run}/{p.parent.name}/{p.stem}", p) for p in sorted(rehearsal.glob("samples/*/*.jsonl"))]
    base = rehearsal / "samples" / "baseline.jsonl"
    return found + ([(f"{run}/baseline", base)] if base.exists() else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rehearsals", nargs="+", type=Path, help="rehearsal output folders (out/rehearsal)")
    ap.add_argument("--out", type=Path, default=DEFAULT)
    args = ap.parse_args()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["segment", "ts", "agent", "op", "latency_ms", "ok"])
    agents: dict[str, int] = {}
    rows = segs = 0
    for reh in args.rehearsals:
        for name, path in segments(reh):
            data = [s for s in load_samples([path]) if s.cohort == "control" and s.op in ("recall", "remember")]
            if not data:
                continue
            t0 = min(s.ts for s in data)
            segs += 1
            for s in sorted(data, key=lambda s: s.ts):
                agent = agents.setdefault(s.agent or "", len(agents))
                w.writerow([name, f"{s.ts - t0:.4f}", agent, s.op[0], f"{s.latency_ms:.3f}", int(s.ok)])
                rows += 1
    args.out.write_bytes(gzip.compress(buf.getvalue().encode(), 9, mtime=0))
    print(f"{rows} control requests in {segs} segments -> {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
