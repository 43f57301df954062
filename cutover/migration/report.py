"""The reconciliation report: reconcile.json and reconcile.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def markdown(report: dict[str, Any], repaired: dict[str, Any] | None = None) -> str:
    lines = [
        f"# Reconciliation: {report['source']} -> {report['target']}",
        "",
        f"**Parity: {'yes' if report['parity'] else 'NO'}** · {report['records_scanned']} records scanned · "
        f"{report['namespaces']} namespaces · missing in target {report['totals']['missing_in_target']} · "
        f"missing in source {report['totals']['missing_in_source']} · mismatched {report['totals']['mismatched']}",
        "",
    ]
    if report["window"]:
        lines += [f"Window (observed_at, ms): {report['window'][0]} .. {report['window'][1]}", ""]
    if repaired:
        lines += [
            f"Repair: {repaired['copied_missing']} copied, {repaired['replaced_stale']} stale replaced, "
            f"{repaired['deleted_extra']} extra deleted.",
            "",
        ]
    lines += [
        "| namespace | tier | source count | target count | source checksum | target checksum | parity |",
        "|---|---|---|---|---|---|---|",
    ]
    for ns, v in report["per_namespace"].items():
        for tier, t in v["tiers"].items():
            ok = t["source_count"] == t["target_count"] and t["source_checksum"] == t["target_checksum"]
            lines.append(
                f"| {ns} | {tier} | {t['source_count']} | {t['target_count']} | `{t['source_checksum']}` | "
                f"`{t['target_checksum']}` | {'yes' if ok else 'NO'} |"
            )
    bad = {ns: v for ns, v in report["per_namespace"].items() if not v["parity"]}
    if bad:
        lines += ["", "## Differences (first ids of each kind)", ""]
        for ns, v in bad.items():
            sample = v["sample"]
            lines.append(
                f"- `{ns}`: missing in target {sample['missing_in_target'][:10]}, missing in source "
                f"{sample['missing_in_source'][:10]}, mismatched {[m['id'] for m in sample['mismatched'][:10]]}"
            )
    return "\n".join(lines) + "\n"


def write_reports(report: dict[str, Any], out_dir: Path, repaired: dict[str, Any] | None = None) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    j, m = out_dir / "reconcile.json", out_dir / "reconcile.md"
    j.write_text(
        json.dumps({"report": report, "repair": {k: v for k, v in (repaired or {}).items() if k != "after"}}, indent=2)
        + "\n"
    )
    m.write_text(markdown(report, repaired))
    return j, m
