"""MkDocs hook: pages generated from the plan at build time, so no number is ever retyped.

- rolling-out/phases/<phase>.md: duration, commands, monitoring targets, success criteria, abort triggers;
- on-call/alerts/<alert>.md: one page per alert (Meaning, Impact, Diagnosis, Mitigation) at the path
  its `runbook_url` names, and reference/alerts.md, the table of all alerts;
- policy/compatibility.md from policy/compatibility.yaml;
- load-testing/example-report.md: a report the judge really wrote (with its plots) on reproducible data;
- in hand-written pages, `{{ plan:analysis.min_samples }}` (any dotted path into the effective plan,
  `{{ plan:phase.canary.analysis.min_samples }}` for one phase) is replaced by the plan's value.

mkdocs.yml names this file under `hooks:`; the plan is the project's rollout.yaml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cutover.plan.durations import format_duration
from cutover.plan.metrics import contract_markdown
from cutover.plan.model import Plan, load_plan
from cutover.render.alerts import BURN_WINDOWS, kebab, render_rules

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page
    from pydantic.fields import FieldInfo

DASHBOARDS = {
    "rollout-overview": "Rollout overview",
    "canary-vs-control": "Canary vs control",
    "slo-compliance": "SLO compliance",
    "migration-dual-run": "Migration and dual-run",
}

ALERT_PAGES = "on-call/alerts"  # one Markdown page an alert: Meaning, Impact, Diagnosis, Mitigation


def _all_rules(plan: Plan, base: str) -> dict[str, dict[str, Any]]:
    """Every alert rule of every phase, by name (the last phase's instance)."""
    rules: dict[str, dict[str, Any]] = {}
    for phase in plan.phase_names:
        for g in render_rules(plan, phase, "STACK", base)["groups"]:
            for r in g["rules"]:
                if "alert" in r:
                    rules.setdefault(r["alert"], r)
    return rules


def phase_page(plan: Plan, name: str) -> str:
    eff = plan.effective(name)
    p, i = eff.phase, eff.index
    f = p.flags
    prev = plan.phases[i - 1].name if i else None
    gate_evidence = plan.phases[i - 1].exit_evidence
    entry_gate = f"{', '.join(gate_evidence)} evidence from `{prev}`" if prev and gate_evidence else "none"
    lines = [
        f"# {p.title or name}",
        "",
        p.description,
        "",
        "| | |",
        "|---|---|",
        f"| phase | `{name}` ({i} of {len(plan.phases) - 1}) |",
        f"| minimum duration | {format_duration(p.min_duration)} |",
        f"| treatment cohort | {f.treatment.describe()} |",
        f"| treatment read path | `{f.read_path}` (control reads `legacy`) |",
        f"| write mode | `{f.write_mode}` |",
        f"| entry gate | {entry_gate} |",
        "",
        "## Commands",
        "",
        '=== "Pulumi"',
        "",
        "    ```sh",
        "    pulumi stack select staging",
        f"    pulumi config set memoryos-rollout:phase {name}",
        "    pulumi up",
        "    ```",
        "",
        '=== "GitOps / kubectl"',
        "",
        "    ```sh",
        f"    cutover render --stack staging --phase {name} --out out/staging",
        "    promtool test rules out/staging/rules.test.yml",
        "    kubectl apply -f out/staging/manifests/",
        "    ```",
        "",
        '=== "Check the gate first"',
        "",
        "    ```sh",
        f"    cutover plan transition --from {prev or '(none)'} --to {name} --evidence evidence/staging --stack staging"
        if prev
        else f"    cutover plan transition --to {name}",
        "    ```",
        "",
    ]
    if f.read_path == "memoryos" and not f.treatment.is_global:
        lines += [
            '=== "Canary comparison"',
            "",
            "    ```sh",
            "    cutover loadtest canary --host http://127.0.0.1:8080 --run-time 10m --samples out/canary.jsonl",
            f"    cutover analyze out/canary.jsonl --phase {name} --stack staging --out evidence/staging/{name}",
            "    ```",
            "",
        ]
    if "drift" in p.exit_evidence:
        lines += [
            '=== "Drift evidence"',
            "",
            "    ```sh",
            f"    cutover evidence drift --admin http://127.0.0.1:8081 --stack staging --phase {name} --wait 600",
            "    ```",
            "",
        ]
    if "drill" in p.exit_evidence:
        lines += [
            '=== "Chaos drill"',
            "",
            "    ```sh",
            "    cutover drill --gateway http://127.0.0.1:8080 --admin http://127.0.0.1:8081 "
            "--prometheus http://127.0.0.1:9090 \\",
            f"      --controller http://127.0.0.1:9095 --fault latency --phase {name} --stack staging \\",
            "      --legacy sqlite:data/staging/legacy.db --memoryos sqlite:data/staging/memoryos.db \\",
            "      --rollback-log data/staging/rollbacks.jsonl --out evidence/staging",
            "    ```",
            "",
            "    Then, the flags rolled forward after the controller's hold-down, again with `--fault errors`. "
            "See [the chaos drill](../../on-call/rollback.md#rehearsing-it-the-chaos-drill).",
            "",
        ]
    if name == plan.phases[0].name:
        lines += [
            '=== "Soak and baseline"',
            "",
            "    ```sh",
            "    cutover loadtest soak --run-time 30m --samples out/soak.jsonl",
            f"    cutover analyze out/soak.jsonl --phase {name} --kind soak --stack staging "
            "--out evidence/staging/soak",
            "    cutover loadtest baseline --run-time 10m --samples out/baseline.jsonl",
            f"    cutover analyze out/baseline.jsonl --phase {name} --kind baseline --stack staging "
            "--out evidence/staging/baseline",
            "    ```",
            "",
        ]
    lines += ["## Monitoring targets", "", "| target | value |", "|---|---|"]
    m = eff.monitoring
    lines += [
        f"| recall availability | {m.recall_availability:g} |",
        f"| recall p99 | {m.recall_p99_ms:g} ms |",
        f"| drift (mean parity drift: records either store returns that the other does not hold identically) "
        f"| at most {m.drift_max:g} |",
        f"| fallback rate | at most {m.fallback_rate_max:g} |",
        f"| outbox lag | at most {m.outbox_lag_max_s:g} s |",
        "",
        "Dashboards: " + ", ".join(f"*{t}* (`cutover-{slug}`)" for slug, t in DASHBOARDS.items()) + ".",
        "",
        "## Success criteria",
        "",
    ] + [f"- [ ] {c}" for c in eff.success_criteria()]
    if {"soak", "verdict", "baseline"} & set(p.exit_evidence):
        lines += ["", "How each verdict is computed: [A/B testing methodology](../../load-testing/methodology.md)."]
    if "drift" in p.exit_evidence:
        lines += ["", "How drift is measured: [the gateway's shadow reads](../../operations/gateway.md#health)."]
    t = eff.abort_triggers
    lines += [
        "",
        "## Abort triggers",
        "",
        f"Each holds for {format_duration(t.for_)} before it pages; the controller then "
        f"applies a **{t.rollback}** rollback, at most once per {format_duration(t.hold_down)}.",
        "",
    ]
    lines += [f"- {c}" for c in eff.abort_conditions()]
    a = eff.analysis
    lines += ["", "## Analysis settings", "", "| setting | value |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in a.model_dump(mode="json").items()
    ]
    return "\n".join(lines) + "\n"


def alert_page(name: str, rule: dict[str, Any], prose: str) -> str:
    """The alert's page: its written runbook text (runbooks/on-call/alerts/<name>.md) between a head and
    the rule as the plan renders it."""
    labels = ", ".join(f"`{k}={v}`" for k, v in rule["labels"].items() if k not in ("phase", "stack"))
    lines = [
        f"# {name}",
        "",
        f"**Severity:** {rule['labels']['severity']} · labels: {labels}",
        "",
        f"> {rule['annotations']['summary']}",
        "",
        prose.strip(),
        "",
    ]
    lines += [
        "## Rule",
        "",
        "```promql",
        rule["expr"],
        "```",
        "",
        f"`for: {rule.get('for', '0s')}` · thresholds come from the plan (`cutover plan show --phase PHASE`).",
    ]
    if name.endswith("BurnRate"):
        lines += ["", "| long | short | burn factor | for | severity |", "|---|---|---|---|---|"] + [
            f"| {b.long} | {b.short} | {b.factor:g}x | {b.for_} | {b.severity} |" for b in BURN_WINDOWS
        ]
    return "\n".join(lines) + "\n"


def alerts_table(rules: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Alerts",
        "",
        "Every alert the rendered rules can contain, with its page. Generated from the rules.",
        "",
        "| alert | severity | summary |",
        "|---|---|---|",
    ]
    for name, r in sorted(rules.items()):
        lines.append(
            f"| [{name}](../on-call/alerts/{kebab(name)}.md) | {r['labels']['severity']} "
            f"| {r['annotations']['summary']} |"
        )
    return "\n".join(lines) + "\n"


def compatibility_page(data: dict[str, Any]) -> str:
    cols = data["columns"]
    lines = [
        "# Compatibility matrix",
        "",
        data.get("intro", ""),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in data["rows"]:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


DURATION_FIELDS = {"min_duration", "for", "hold_down", "slo_window"}
_TOKEN = re.compile(r"\{\{\s*plan:([\w.\-]+)\s*\}\}")


def resolve(plan: Plan, path: str) -> str:
    parts = path.split(".")
    if parts[0] == "phase":
        obj: object = plan.effective(parts[1])
        parts = parts[2:]
    else:
        obj = plan
    for part in parts:
        obj = getattr(obj, part if hasattr(obj, part) else part + "_")
    if parts and parts[-1] in DURATION_FIELDS:
        assert isinstance(obj, (int, float)), f"{path} is not a duration"  # Duration fields are seconds
        return format_duration(obj)
    if isinstance(obj, float) and obj.is_integer():
        return str(int(obj))
    return str(obj)


def stack_settings_page() -> str:
    """Every `memoryos-rollout:*` stack key, from the StackConfig model itself (nested parts flattened)."""
    from pydantic import BaseModel

    from cutover.plan.stacks import SECRET_KEYS, StackConfig

    def default(field: FieldInfo) -> str:
        if field.is_required():
            return "required"
        value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            value = value.model_dump()
        return f"`{json.dumps(value)}`"

    def rows(model: type[BaseModel], prefix: str) -> Iterator[str]:
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel) and ann.__name__ != "Resources":
                yield f"| **`{prefix}{name}`** | {field.description or ''} | |"
                yield from rows(ann, f"{prefix}{name}.")
            else:
                yield f"| `{prefix}{name}` | {field.description or ''} | {default(field)} |"

    lines = [
        "# Stack settings",
        "",
        "The keys of `Pulumi.<stack>.yaml` under `memoryos-rollout:`, generated from the model that both",
        "`cutover render` and the Pulumi program read (`cutover.plan.stacks.StackConfig`). Nested keys are set",
        "as objects, e.g. `pulumi config set --path 'memoryos-rollout:gateway.enabled' true`.",
        "",
        "| key | meaning | default |",
        "|---|---|---|",
        *rows(StackConfig, ""),
        "",
        "Secret keys, set with `pulumi config set --secret` and read only by the Pulumi program: "
        + ", ".join(f"`{k}`" for k in SECRET_KEYS)
        + " (the gateway's admin token).",
        "",
    ]
    return "\n".join(lines)


def example_report(plan: Plan) -> tuple[str, dict[str, bytes]]:
    """Run the real judge and report writer on reproducible samples; return the page and its plots."""
    import tempfile

    import numpy as np

    from cutover.judge.report import write_analysis
    from cutover.judge.samples import Sample
    from cutover.judge.verdict import judge

    rng = np.random.default_rng(42)
    samples = []
    for cohort, scale in (("control", 1.0), ("treatment", 1.08)):
        for i, x in enumerate(rng.lognormal(np.log(40), 0.45, 4000) * scale):
            ids = [f"r{j}" for j in range(10)] if rng.random() < 0.95 else [f"x{j}" for j in range(10)]
            samples.append(
                Sample(float(i), cohort, "recall", float(x), bool(rng.random() >= 0.001), 200, ids, f"team/{i % 50}|q")
            )
    verdict = judge(samples, plan.effective("canary").analysis, 0.5, ops=("recall",))
    with tempfile.TemporaryDirectory() as tmp:
        write_analysis(verdict, samples, plan, "canary", "staging", Path(tmp))
        page = (Path(tmp) / "report.md").read_text()
        images = {p.name: p.read_bytes() for p in Path(tmp).glob("*.png")}
    intro = (
        '!!! note "How this page is made"\n    The docs build runs the judge (`cutover.judge.verdict`) '
        "and the report writer on 4 000 reproducible samples per cohort, the treatment 8 % slower, "
        "so this is exactly what `cutover analyze` writes.\n\n"
    )
    return page.replace("# Canary analysis", "# Example report", 1).replace("\n", "\n" + intro, 1), images


# -- MkDocs hooks ------------------------------------------------------------------------------------
_state: dict[str, Any] = {}


def on_config(config: MkDocsConfig, **kw: Any) -> MkDocsConfig:
    _state["root"] = root = Path(config["config_file_path"]).resolve().parent  # the project: mkdocs.yml's directory
    _state["plan"] = load_plan(root / "rollout.yaml")
    _state["base"] = (config.get("site_url") or "http://127.0.0.1:8000/").rstrip("/")
    return config


def alert_pages(rules: dict[str, dict[str, Any]], files: Files) -> dict[str, str]:
    """Every alert's page; an alert without its runbook text, or text for no alert, fails the build."""
    written = {f.src_uri: f for f in files if f.src_uri.startswith(ALERT_PAGES + "/")}
    wanted = {f"{ALERT_PAGES}/{kebab(n)}.md": n for n in rules}
    if set(wanted) != set(written):
        raise ValueError(
            f"alert runbook pages: missing {sorted(set(wanted) - set(written))}, "
            f"for no alert {sorted(set(written) - set(wanted))} (write one per alert under runbooks/{ALERT_PAGES}/)"
        )
    return {uri: alert_page(n, rules[n], written[uri].content_string) for uri, n in wanted.items()}


def on_files(files: Files, config: MkDocsConfig, **kw: Any) -> Files:
    from mkdocs.structure.files import File

    plan: Plan = _state["plan"]
    rules = _all_rules(plan, _state["base"])
    generated = {f"rolling-out/phases/{p}.md": phase_page(plan, p) for p in plan.phase_names}
    generated.update(alert_pages(rules, files))
    generated["reference/alerts.md"] = alerts_table(rules)
    generated["reference/metrics.md"] = "# Metrics contract\n\n" + contract_markdown(plan)
    generated["reference/stack-settings.md"] = stack_settings_page()
    compat = _state["root"] / "runbooks" / "policy" / "compatibility.yaml"
    generated["policy/compatibility.md"] = compatibility_page(yaml.safe_load(compat.read_text()))
    page, images = example_report(plan)
    generated["load-testing/example-report.md"] = page
    for uri, content in generated.items():
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=content))
    for name, data in images.items():
        files.append(File.generated(config, f"load-testing/{name}", content=data))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files, **kw: Any) -> str:
    plan: Plan = _state["plan"]

    def sub(m: re.Match[str]) -> str:
        try:
            return resolve(plan, m.group(1))
        except (AttributeError, KeyError, Exception) as exc:  # a typo must fail the strict build
            raise ValueError(f"{page.file.src_uri}: unknown plan value {m.group(1)!r} ({exc})") from None

    return _TOKEN.sub(sub, markdown)
