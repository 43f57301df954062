"""Verdict files, Markdown reports and plots for one analysis, and the campaign's final report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cutover.judge.evidence import Evidence, load_evidence, new_evidence
from cutover.judge.samples import Sample
from cutover.judge.verdict import Verdict
from cutover.plan.model import EvidenceKind, Plan


def _readable_log_axis(axis: Any) -> None:
    """Ticks at 1, 2 and 5 of each decade, labelled as plain numbers (12.5, not 1.25x10^1), and no
    labels on the minor ticks: over less than a decade matplotlib labels every minor tick, and they
    overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _plots(samples: Sequence[Sample], verdict: Verdict, out: Path) -> list[str]:
    """The report's PNG plots; none where matplotlib is not installed (the `plots` extra: the gateway
    image judges without it)."""
    try:
        import matplotlib
    except ImportError:
        return []

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    colors = {"control": "#1f77b4", "treatment": "#d62728"}
    lat = {c: np.array([s.latency_ms for s in samples if s.cohort == c and s.op == "recall" and s.ok]) for c in colors}
    if any(len(v) for v in lat.values()):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for c, v in lat.items():
            if len(v):
                ax1.hist(
                    v,
                    bins=np.geomspace(max(v.min(), 0.1), v.max() + 1e-9, 40),
                    alpha=0.5,
                    label=f"{c} (n={len(v)})",
                    color=colors[c],
                )
                qs = np.linspace(0.01, 0.999, 200)
                ax2.plot(qs * 100, np.quantile(v, qs), label=c, color=colors[c])
        ax1.set_xscale("log")
        ax1.set(title="recall latency distribution", xlabel="ms (log)", ylabel="requests")
        ax2.set(title="recall latency quantiles", xlabel="quantile (%)", ylabel="ms")
        ax2.set_yscale("log")
        _readable_log_axis(ax1.xaxis)
        _readable_log_axis(ax2.yaxis)
        for ax in (ax1, ax2):
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=90)
        plt.close(fig)
        made.append("latency.png")
    errs = [m for m in verdict.metrics if m.name.endswith("_errors") and m.figures]
    if errs:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, m in enumerate(errs):
            f = m.figures
            lo, hi = f["difference_ci"]
            ax.errorbar(
                [i],
                [f["difference"] * 100],
                yerr=[[(f["difference"] - lo) * 100], [(hi - f["difference"]) * 100]],
                fmt="o",
                capsize=6,
                color="#d62728" if m.classification in ("High", "Critical") else "#2ca02c",
            )
            ax.annotate(
                f"{f['treatment_rate']:.2%} vs {f['control_rate']:.2%}",
                (i, f["difference"] * 100),
                textcoords="offset points",
                xytext=(8, 4),
                fontsize=8,
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(errs)), [m.name for m in errs])
        ax.set(title="error rate, treatment - control (interval)", ylabel="percentage points")
        fig.tight_layout()
        fig.savefig(out / "errors.png", dpi=90)
        plt.close(fig)
        made.append("errors.png")
    ov = next((m for m in verdict.metrics if m.name == "recall_overlap" and m.figures), None)
    if ov:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        f = ov.figures
        bars = [
            ("agreement\n(complete answers)", f.get("agreement"), "#2ca02c"),
            ("legacy with itself\n(noise floor)", f.get("noise_floor"), "#7f7f7f"),
            ("top-k overlap\n(ranking, reported)", f.get("topk_overlap"), "#1f77b4"),
            ("RBO\n(ranking, reported)", f.get("rbo"), "#9467bd"),
        ]
        shown = [(label, v, c) for label, v, c in bars if v is not None]
        ax.bar([b[0] for b in shown], [b[1] for b in shown], color=[b[2] for b in shown])
        if f.get("agreement") is not None:
            base = f.get("noise_floor") or 1.0
            ax.axhline(f["floor"] * base, color="#d62728", ls="--", label=f"floor {f['floor']} x noise floor")
        over = (
            f"{f['complete_pairs']} complete answers" if "complete_pairs" in f else f"{f['shadow_reads']} shadow reads"
        )
        ax.set(ylim=(0, 1.05), title=f"recall quality over {over}")
        ax.tick_params(axis="x", labelsize=7)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "overlap.png", dpi=90)
        plt.close(fig)
        made.append("overlap.png")
    return made


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def write_analysis(
    verdict: Verdict,
    samples: Sequence[Sample],
    plan: Plan,
    phase: str,
    stack: str | None,
    out: Path,
    kind: EvidenceKind = "verdict",
    title: str | None = None,
) -> Evidence:
    out.mkdir(parents=True, exist_ok=True)
    ev = new_evidence(
        kind,
        phase,
        verdict.verdict,
        stack=stack,
        plan_digest=plan.digest(),
        reasons=verdict.reasons,
        checks=[
            {
                "name": m.name,
                "status": "nodata"
                if m.classification == "NoData"
                else ("fail" if m.classification in ("High", "Critical") else "pass"),
                "detail": m.classification,
            }
            for m in verdict.metrics
            if m.classification != "NotApplicable"  # reported below, gates nothing
        ],
        samples=verdict.samples,
        details=json.loads(json.dumps(verdict.as_dict(), default=float)),
    )
    (out / "verdict.json").write_text(ev.to_json())
    plots = _plots(samples, verdict, out)
    a = plan.effective(phase).analysis
    lines = (
        [
            f"# {title or 'Canary analysis'}: phase {phase}" + (f", stack {stack}" if stack else ""),
            "",
            f"**Verdict: {verdict.verdict}** · score {verdict.score} · control {verdict.samples.get('control', 0)} "
            f"samples, treatment {verdict.samples.get('treatment', 0)} · sample-ratio p = {verdict.srm_p:.3g}",
            "",
            f"Data: {verdict.source}.",
            "",
            "## Reasons",
            "",
        ]
        + [f"- {r}" for r in verdict.reasons]
        + [
            "",
            "## Checks",
            "",
            "| metric | classification | control n | treatment n | figures |",
            "|---|---|---|---|---|",
        ]
    )
    for m in verdict.metrics:
        figs = "; ".join(f"{k} {_fmt(v)}" for k, v in m.figures.items())
        lines.append(f"| {m.name} | {m.classification} | {m.n_control} | {m.n_treatment} | {figs} |")
    if verdict.sequential:
        s = verdict.sequential
        lines += [
            "",
            f"Sequential guardrail (always-valid, mSPRT): latency p = {s['latency_p']:.3g}, errors p = "
            f"{s['errors_p']:.3g}, alarm: {'yes' if s['alarm'] else 'no'}.",
        ]
    lines += [
        "",
        "## Settings from the plan",
        "",
        f"minimum samples per cohort {a.min_samples} · {a.judge_windows} time windows · allowed median increase "
        f"{a.median_regression_max:.0%} (critical {a.median_regression_critical:.0%}) · allowed tail (p95-p98) "
        f"increase {a.tail_regression_max:.0%} (critical {a.tail_regression_critical:.0%}) · allowed error-rate "
        f"increase {a.error_rate_increase_max:.2%} · answer agreement floor {a.topk_overlap_min} x legacy's own · "
        f"alpha {a.alpha} · sample-ratio mismatch at p < {a.srm_p}",
        "",
    ]
    lines += [f"![{p}]({p})" for p in plots] or [
        "Plots not drawn: matplotlib is not installed (pip install 'cutover[plots]')."
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return ev


def campaign_report(plan: Plan, evidence_dirs: list[Path], out: Path) -> Path:
    """The phase-5 post-mortem: every phase's verdicts, gate evidence and rollback records."""
    out.mkdir(parents=True, exist_ok=True)
    evidence = load_evidence(evidence_dirs)
    order = {p: i for i, p in enumerate(plan.phase_names)}
    evidence.sort(key=lambda e: (order.get(e.phase, 99), e.created_at))
    lines = [
        f"# Campaign report: {plan.name}",
        "",
        f"Plan {plan.digest()} · {len(evidence)} evidence files.",
        "",
        "| phase | kind | stack | verdict | when | reasons |",
        "|---|---|---|---|---|---|",
    ]
    for e in evidence:
        lines.append(
            f"| {e.phase} | {e.kind} | {e.stack or 'all'} | {e.verdict} | {e.created_at:%Y-%m-%d %H:%M} | "
            f"{'; '.join(e.reasons)[:300]} |"
        )
    rollbacks = [e for e in evidence if e.verdict == "ROLLBACK"]
    lines += ["", f"## Rollbacks ({len(rollbacks)})", ""] + [
        f"- {e.phase} ({e.kind}, {e.source}): {'; '.join(e.reasons)}" for e in rollbacks
    ]
    lines += ["", "## Plots", ""]
    for e in evidence:
        if e.source:
            for png in sorted(Path(e.source).parent.glob("*.png")):
                rel = Path(png).resolve()
                lines.append(f"### {e.phase} / {e.kind}: {png.name}\n\n![{png.name}]({rel})\n")
    path = out / "campaign-report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
