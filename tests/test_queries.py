"""Every dashboard and rule expression runs against a real Prometheus scraping the contract metrics."""

from __future__ import annotations

import json
import time

import yaml

from cutover.render import dashboards
from cutover.render.alerts import render_rules

from .conftest import ROOT
from .promstack import exporter, prometheus

# What Grafana would substitute: all stacks, all cohorts, a rate interval of a few scrapes.
SUBSTITUTIONS = {"$__rate_interval": "15s", "$stack": ".*", "$cohort": ".*"}


def substitute(expr: str) -> str:
    for k, v in SUBSTITUTIONS.items():
        expr = expr.replace(k, v)
    return expr


def test_every_panel_and_rule_query_runs_and_panels_return_data(plan, tmp_path):
    rules = render_rules(plan, "canary", "staging", "https://runbooks.example.com/cutover")
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    panel_queries = [
        (slug, title, substitute(e)) for slug, b in dashboards.build(plan).items() for title, e in dashboards.queries(b)
    ]
    rule_queries = [(r.get("alert") or r["record"], r["expr"]) for g in rules["groups"] for r in g["rules"]]

    with exporter(tmp_path, ROOT / "rollout.yaml") as target, prometheus(tmp_path, [target], [rule_file]) as prom:
        empty: list = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            empty = []
            for slug, title, expr in panel_queries:
                res = prom.query(expr)
                assert res["status"] == "success", f"{slug} / {title}: {res.get('error')}\n{expr}"
                if not res["data"]["result"]:
                    empty.append(f"{slug} / {title}")
            if not empty:
                break
            time.sleep(1)
        assert not empty, f"panels without data after 60 s: {empty}"
        for name, expr in rule_queries:
            res = prom.query(expr)
            assert res["status"] == "success", f"{name}: {res.get('error')}"
        recorded = [n for n, _ in rule_queries if n.startswith("cutover:")]
        assert all(prom.query(n)["data"]["result"] for n in recorded), "a recording rule produced no series"
        loaded = prom.api("rules")["data"]["groups"]
        assert sum(len(g["rules"]) for g in loaded) == len(rule_queries)
        assert all(r["health"] == "ok" for g in loaded for r in g["rules"])


def test_committed_dashboards_are_fresh(plan):
    built = dashboards.build(plan)
    committed = {p.stem: json.loads(p.read_text()) for p in (ROOT / "dashboards").glob("*.json")}
    assert (
        set(committed)
        == set(built)
        == {"rollout-overview", "canary-vs-control", "slo-compliance", "migration-dual-run"}
    )
    for slug in built:
        assert committed[slug] == built[slug], f"dashboards/{slug}.json is stale: run `cutover dashboards export`"


def test_dashboards_cover_latency_errors_queues_and_degradation(plan):
    text = json.dumps(dashboards.build(plan))
    for metric in (
        "duration_seconds_bucket",
        'outcome=\\"error\\"',
        "outbox_depth",
        "outbox_oldest_age",
        "fallbacks",
        "drift",
    ):
        assert metric in text, metric
    for board in dashboards.build(plan).values():
        names = [v["name"] for v in board["templating"]["list"]]
        assert {"stack", "cohort", "datasource"} <= set(names)
