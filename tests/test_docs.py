"""The docs site: strict build, links and runbook_url targets resolve, phase pages equal the plan,
and a real browser (headless Chromium) searches for an alert and reaches its page."""

from __future__ import annotations

import functools
import html
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from cutover.plan.durations import format_duration
from cutover.plan.stacks import load_project
from cutover.render.alerts import alert_names, render_rules

from .conftest import ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def page(site: Path, path: str) -> str:
    return (site / path.strip("/") / "index.html").read_text()


def test_every_runbook_url_resolves_to_its_page(site):
    for stack in ("staging", "production"):
        plan, cfg = load_project(ROOT, stack)
        for phase in plan.phase_names:
            rules = render_rules(plan, phase, stack, cfg.runbookBaseUrl)
            for g in rules["groups"]:
                for r in g["rules"]:
                    if "alert" in r:
                        path = r["annotations"]["runbook_url"][len(cfg.runbookBaseUrl) :]
                        text = page(site, path)
                        assert "<h1 id=" in text and r["alert"] in text
                        for section in ("Meaning", "Impact", "Diagnosis", "Mitigation"):
                            assert f">{section}<" in text, (r["alert"], section)


def test_every_internal_link_resolves(site):
    broken = []
    for f in site.rglob("*.html"):
        if f.name == "404.html":  # served at any depth, so it links by absolute site paths
            continue
        text = f.read_text()
        for href in re.findall(r'href="([^"]+)"', text):
            href = html.unescape(href)
            u = urlparse(href)
            if u.scheme or href.startswith(("mailto:", "#", "//")):
                continue
            target = (f.parent / u.path).resolve() if u.path else f
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{f.relative_to(site)} -> {href}")
                continue
            if u.fragment and target.suffix == ".html" and f'id="{u.fragment}"' not in target.read_text():
                broken.append(f"{f.relative_to(site)} -> {href} (anchor)")
    assert not broken, broken[:20]


def test_phase_pages_carry_the_plans_numbers(site, plan):
    for name in plan.phase_names:
        eff = plan.effective(name)
        text = page(site, f"rolling-out/phases/{name}")
        assert f"<td>{format_duration(eff.phase.min_duration)}</td>" in text
        for key, value in eff.analysis.model_dump(mode="json").items():
            assert f"<td>{key}</td>\n<td>{value}</td>" in text, (name, key)
        assert f"{eff.monitoring.recall_p99_ms:g} ms" in text and f"{eff.abort_triggers.p95_latency_ms:g} ms" in text
        assert f"pulumi config set memoryos-rollout:phase {name}" in html.unescape(re.sub(r"<[^>]+>", "", text))
        # the phase whose exit needs drift evidence says which command writes it
        shown = html.unescape(re.sub(r"<[^>]+>", "", text))
        assert ("cutover evidence drift --admin" in shown) == ("drift" in eff.phase.exit_evidence), name
        # and the phase whose exit needs a chaos drill, the command that runs it
        assert ("cutover drill --gateway" in shown) == ("drill" in eff.phase.exit_evidence), name
    checklist = page(site, "checklists/canary")
    assert f"at least {plan.effective('canary').analysis.min_samples} samples per cohort" in checklist
    assert "{{" not in checklist


def test_alert_table_and_metrics_contract(site, plan):
    table = page(site, "reference/alerts")
    names = set()
    for phase in plan.phase_names:
        names |= set(alert_names(render_rules(plan, phase, "s", "http://x")))
    assert all(n in table for n in names)
    metrics = page(site, "reference/metrics")
    for m in ("cutover_requests_total", "cutover_outbox_depth", "cutover_drift_distance"):
        assert m in metrics
    assert "latency.png" in page(site, "load-testing/example-report")
    assert (site / "load-testing" / "latency.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.browser
def test_browser_searches_an_alert_and_reaches_its_page(site, tmp_path):
    if not shutil.which("chromium") or not shutil.which("chromedriver"):  # a failure, never a skip counted as a pass
        pytest.fail("the browser test needs Debian's chromium and chromium-driver: run .ci/install (as root)")
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,900",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(
        options=opts, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    )
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        driver.get(base)
        wait = WebDriverWait(driver, 30)
        box = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input.md-search__input")))
        driver.execute_script("document.getElementById('__search').checked = true; arguments[0].focus();", box)
        wait.until(ec.visibility_of(box))
        box.send_keys("CutoverOutboxLagHigh")
        from selenium.common.exceptions import StaleElementReferenceException

        def top_result(d: webdriver.Chrome) -> str | None:
            """The first result's link once it is the alert's page (the list re-renders while the
            query is typed: a result read as it is replaced is read again)."""
            try:
                links = d.find_elements(By.CSS_SELECTOR, ".md-search-result__link")
                href = links[0].get_attribute("href") if links else None
            except StaleElementReferenceException:
                return None
            return href if href and "cutover-outbox-lag-high" in href else None

        href = wait.until(top_result)  # the alert's own page ranks first
        driver.get(href)  # follow the result, as a click would
        wait.until(lambda d: "cutover-outbox-lag-high" in d.current_url and "Mitigation" in d.page_source)
        shot = tmp_path / "alert-page.png"
        driver.save_screenshot(str(shot))
        assert urljoin(base, "on-call/alerts/cutover-outbox-lag-high/") in driver.current_url
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 10_000
        shutil.copy(shot, Path("/tmp/cutover-alert-page.png"))
    finally:
        driver.quit()
        server.shutdown()


def _documented_commands() -> list[tuple[str, str]]:
    """(where, command line) for every `cutover ...` in the README and the runbook sources: shell
    blocks (continuation lines joined) and inline code."""
    import re as _re

    found = []
    for md in [ROOT / "README.md", *sorted((ROOT / "runbooks").rglob("*.md"))]:
        text = md.read_text(encoding="utf-8")
        for block in _re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, flags=_re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("cutover "):
                    found.append((md.relative_to(ROOT).as_posix(), line))
        for span in _re.findall(r"`(cutover [^`]+)`", text):
            found.append((md.relative_to(ROOT).as_posix(), span))
    return found


def _command_problems(line: str) -> list[str]:
    """What is wrong with a documented `cutover ...` line against the real command line."""
    import shlex

    import typer

    from cutover.cli.main import app

    tokens = shlex.split(line.split(" #")[0].replace("...", "X"))[1:]
    tokens = [t for t in tokens if t != "--help"]  # every command has it
    if not tokens or tokens[0].isupper():  # `cutover --help`, `cutover COMMAND --help`
        return []
    cmd = typer.main.get_command(app)
    while hasattr(cmd, "commands") and tokens and tokens[0] in cmd.commands:
        cmd = cmd.commands[tokens.pop(0)]
    if hasattr(cmd, "commands"):  # a group: the line names no command of it
        return [f"no such command: {tokens[0] if tokens else ''}"]
    options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    return [
        f"{cmd.name} has no option {t.split('=')[0]}"
        for t in tokens
        if t.startswith("-") and t.split("=")[0] not in options and t not in ("-", "--")
    ]


def test_every_documented_command_exists_with_its_options():
    documented = _documented_commands()
    assert len(documented) > 30  # the check reads the docs
    wrong = [f"{where}: `{line}`: {p}" for where, line in documented for p in _command_problems(line)]
    assert wrong == []
    # and the check refuses what does not exist
    assert _command_problems("cutover gate --phasee canary") == ["gate has no option --phasee"]
    assert _command_problems("cutover rollback --now") == ["no such command: rollback"]
