"""The rehearsal's report."""

from __future__ import annotations

import json

from cutover.ops.rehearsal.harness import DURATION_SCALE, Harness


def write_report(r: Harness) -> int:
    """report.md and rehearsal.json: every check with its figures, the time scales, the overrides."""
    ok = bool(r.checks) and all(c.ok for c in r.checks)
    elapsed = r.elapsed()
    data = {
        "ok": ok,
        "elapsed_s": round(elapsed, 1),
        "time_scale": r.scale,
        "duration_scale": DURATION_SCALE,
        "overrides": getattr(r, "overrides", {}),
        "checks": [c.__dict__ for c in r.checks],
        "drills": getattr(r, "drills", []),
    }
    (r.out / "rehearsal.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    lines = [
        "# Rehearsal report",
        "",
        f"**{'PASSED' if ok else 'FAILED'}** · {len(r.checks)} checks, "
        f"{sum(not c.ok for c in r.checks)} failed · {elapsed:.0f} s · time compressed {r.scale:g}x "
        f"(alert windows), {DURATION_SCALE:g}x (minimum durations: a day is a second)",
        "",
        "Rehearsal overrides of the plan: "
        + ("; ".join(f"`{k}` = {v}" for k, v in getattr(r, "overrides", {}).items()) or "none"),
        "",
        "| step | check | result | figures |",
        "|---|---|---|---|",
    ]
    for c in r.checks:
        figs = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in c.figures.items())
        detail = " — " + c.detail if c.detail else ""
        lines.append(f"| {c.step} | {c.name}{detail} | {'ok' if c.ok else '**FAIL**'} | {figs} |")
    plots = sorted(str(p.relative_to(r.out)) for p in (r.out / "evidence").rglob("*.png"))
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    (r.out / "report.md").write_text("\n".join(lines) + "\n")
    r.say(f"rehearsal {'PASSED' if ok else 'FAILED'} in {elapsed:.0f} s: {r.out / 'report.md'}")
    return 0 if ok else 1
