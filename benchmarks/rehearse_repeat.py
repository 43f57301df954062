"""Run `make rehearse` N times in a row and print how many passed, each run's duration and each
failed run's first failed check: the rehearsal must pass every time, not once in five.

    python -m benchmarks.rehearse_repeat [--runs 10] [--out out/repeat]

Each run writes its report under OUT/<n>/ (make rehearse OUT=...). About 4-5 minutes a run on a
2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_failure(report: Path) -> str:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return "no rehearsal.json (the rehearsal did not get to write its report)"
    for check in data["checks"]:
        if not check["ok"]:
            return f"{check['step']}: {check['name']} — {check['detail'][:300]}"
    return "no failed check recorded"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("out/repeat"))
    args = ap.parse_args()
    results = []
    for n in range(1, args.runs + 1):
        out = args.out / str(n)
        started = time.monotonic()
        proc = subprocess.run(
            ["make", "--no-print-directory", "rehearse", f"OUT={out}"], cwd=ROOT, capture_output=True, text=True
        )
        seconds = time.monotonic() - started
        ok = proc.returncode == 0
        why = "" if ok else first_failure(ROOT / out / "rehearsal" / "rehearsal.json")
        results.append((n, ok, seconds, why))
        print(
            f"run {n:2d}: {'PASSED' if ok else 'FAILED'} in {seconds:5.0f} s" + (f" — {why}" if why else ""), flush=True
        )
    passed = sum(ok for _, ok, _, _ in results)
    durations = sorted(s for _, _, s, _ in results)
    print(
        f"\n{passed} of {len(results)} runs passed; duration min {durations[0]:.0f} s, median "
        f"{durations[len(durations) // 2]:.0f} s, max {durations[-1]:.0f} s"
    )


if __name__ == "__main__":
    main()
