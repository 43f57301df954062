"""Alert rules: promtool check and unit tests generated from the plan, and their labels and links."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from cutover.render.alerts import alert_names, render_rules
from cutover.render.ruletests import build_rule_tests

from .promstack import need

BASE = "https://runbooks.example.com/cutover"
# phases whose rule sets differ: no treatment / both cohorts / global treatment
DISTINCT = ("pre-deployment", "canary", "full")


def write(tmp_path, plan, phase, rules=None):
    d = tmp_path / phase
    d.mkdir()
    rules = rules or render_rules(plan, phase, "staging", BASE)
    (d / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (d / "rules.test.yml").write_text(yaml.safe_dump(build_rule_tests(plan, phase, rules), sort_keys=False))
    return d


def promtool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([need("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_promtool_checks_the_rules_of_every_phase(plan, tmp_path):
    for phase in plan.phase_names:
        d = write(tmp_path, plan, phase)
        r = promtool("check", "rules", str(d / "rules.yml"))
        assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_unit_tests_pass_for_every_alert(plan, tmp_path):
    dirs = [write(tmp_path, plan, phase) for phase in DISTINCT]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda d: promtool("test", "rules", "rules.test.yml", cwd=d), dirs))
    for d, r in zip(dirs, results):
        assert r.returncode == 0, f"{d.name}: {r.stdout[-3000:]}{r.stderr[-2000:]}"
    # every alert of every phase has its own test group (fire, healthy, zero traffic)
    for phase in plan.phase_names:
        rules = render_rules(plan, phase, "staging", BASE)
        tested = {c["alert_rule_test"][0]["alertname"] for c in build_rule_tests(plan, phase, rules)["tests"]}
        assert tested == set(alert_names(rules)), phase


def test_the_rule_tests_catch_a_wrong_threshold(plan, tmp_path):
    rules = render_rules(plan, "canary", "staging", BASE)
    tests = build_rule_tests(plan, "canary", rules)
    for g in rules["groups"]:
        for r in g["rules"]:
            if r.get("alert") == "CutoverTreatmentLatencyP95High":
                r["expr"] = r["expr"].replace("> 0.45", "> 4.5")  # a rule that no longer matches the plan
    d = tmp_path / "tampered"
    d.mkdir()
    (d / "rules.yml").write_text(yaml.safe_dump(rules))
    (d / "rules.test.yml").write_text(yaml.safe_dump(tests))
    r = promtool("test", "rules", "rules.test.yml", cwd=d)
    assert r.returncode != 0 and "CutoverTreatmentLatencyP95High" in r.stdout + r.stderr


def test_every_alert_is_labelled_and_links_its_runbook(plan):
    for phase in plan.phase_names:
        for g in render_rules(plan, phase, "staging", BASE)["groups"]:
            for r in g["rules"]:
                if "alert" not in r:
                    assert r["record"].startswith("cutover:")
                    continue
                assert r["labels"]["severity"] in (
                    "critical",
                    "warning",
                    "none",
                )  # none: the Watchdog (never inhibited)
                assert r["labels"]["phase"] == phase and r["labels"]["stack"] == "staging"
                a = r["annotations"]
                assert (a["summary"] and "$value" in a["description"]) or r["alert"] == "CutoverWatchdog"
                assert a["runbook_url"].startswith(BASE + "/on-call/alerts/cutover-")


def test_burn_rate_alerts_have_the_four_window_pairs(plan):
    rules = render_rules(plan, "canary", "staging", BASE)
    burn = [r for g in rules["groups"] for r in g["rules"] if r.get("alert", "").endswith("BurnRate")]
    pairs = {
        (r["labels"]["slo"], r["labels"]["long"], r["labels"]["short"], r["for"], r["labels"]["severity"]) for r in burn
    }
    for slo in ("availability", "latency"):
        assert {p[1:] for p in pairs if p[0] == slo} == {
            ("1h", "5m", "2m", "critical"),
            ("6h", "30m", "15m", "critical"),
            ("1d", "2h", "1h", "warning"),
            ("3d", "6h", "3h", "warning"),
        }
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        assert f"cutover:recall_errors:ratio_rate{w}" in recorded and f"cutover:recall_slow:ratio_rate{w}" in recorded


def test_thresholds_follow_the_plan(plan):
    changed = plan.model_copy(
        update={"abort_triggers": plan.abort_triggers.model_copy(update={"p95_latency_ms": 600, "outbox_depth": 50})}
    )
    rules = {
        r["alert"]: r
        for g in render_rules(changed, "canary", "staging", BASE)["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert rules["CutoverTreatmentLatencyP95High"]["expr"].endswith("> 0.6")
    assert rules["CutoverOutboxDepthHigh"]["expr"].endswith("> 50")


@pytest.mark.parametrize(
    "phase, present, absent",
    [
        ("pre-deployment", [], ["CutoverTreatmentNoData", "CutoverTreatmentP99AboveControl"]),
        (
            "canary",
            ["CutoverTreatmentNoData", "CutoverTreatmentP99AboveControl", "CutoverTreatmentErrorRateAboveControl"],
            [],
        ),
        ("full", ["CutoverTreatmentNoData"], ["CutoverTreatmentP99AboveControl"]),
    ],
)
def test_cohort_comparisons_exist_only_when_both_cohorts_do(plan, phase, present, absent):
    names = alert_names(render_rules(plan, phase, "staging", BASE))
    assert set(present) <= set(names) and not set(absent) & set(names)
