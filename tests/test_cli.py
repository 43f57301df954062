"""The `cutover` command as a user runs it: outputs on disk, and short errors with exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cutover.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project's plan and stack files to break."""
    for name in ("rollout.yaml", "Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_render_writes_flags_and_manifests(tmp_path):
    r = run("render", "--stack", "staging", "--phase", "canary", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    flags = json.loads((tmp_path / "flags.json").read_text())
    assert flags["metadata"]["phase"] == "canary"
    obj = yaml.safe_load((tmp_path / "manifests" / "featureflag-memoryos-rollout-flags.yaml").read_text())
    assert obj["kind"] == "FeatureFlag" and obj["metadata"]["namespace"] == "memory-staging"
    assert obj["spec"]["flagSpec"]["flags"] == flags["flags"]


def test_render_all_phases_prints_what_each_phase_changes(tmp_path):
    r = run("render", "--stack", "staging", "--all-phases", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["pre-deployment", "shadow", "canary", "ramp-25", "ramp-50", "ramp-75", "full"]
    )
    assert "writes mirror->memoryos-primary" in r.stdout and "cohort internal+5%->internal+25%" in r.stdout


def test_plan_validate_and_show():
    r = run("plan", "validate")
    assert r.returncode == 0 and "7 phases" in r.stdout
    r = run("plan", "show", "--phase", "canary")
    assert r.returncode == 0 and "p95_latency_ms" in r.stdout and "450" in r.stdout
    r = run("plan", "show", "--phase", "canary", "--json")
    (eff,) = json.loads(r.stdout)
    assert eff["analysis"]["topk_overlap_min"] == 0.85


def test_gate_command_exit_codes(evidence_dir):
    ev = str(evidence_dir)
    assert run("gate", "--phase", "canary", "--evidence", ev, "--stack", "staging").returncode == 0
    closed = run("gate", "--phase", "ramp-25", "--evidence", ev, "--stack", "staging")
    assert closed.returncode == 1 and "ROLLBACK" in closed.stderr
    ok = run("plan", "transition", "--from", "shadow", "--to", "canary", "--evidence", ev, "--stack", "staging")
    assert ok.returncode == 0 and "forward" in ok.stdout


def _break_plan(project: Path, mutate) -> None:
    data = yaml.safe_load((project / "rollout.yaml").read_text())
    mutate(data)
    (project / "rollout.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


BAD = {
    "missing field": (
        lambda p: _break_plan(p, lambda d: d["phases"][2].pop("flags")),
        ["render", "--stack", "staging"],
        ["rollout.yaml:", "phases[2].flags", "Field required", "fix:"],
    ),
    "percentage out of range": (
        lambda p: _break_plan(p, lambda d: d["phases"][3]["flags"]["treatment"].update(percentage=-5)),
        ["plan", "validate"],
        ["phases[3].flags.treatment.percentage", "greater than or equal to 0"],
    ),
    "non-monotone ramp": (
        lambda p: _break_plan(p, lambda d: d["phases"][5]["flags"]["treatment"].update(percentage=30)),
        ["plan", "validate"],
        ["phases[5].flags.treatment.percentage", "ramp goes down", "50 %"],
    ),
    "malformed yaml": (
        lambda p: (p / "rollout.yaml").write_text("version: 1\nphases:\n  - name: [unclosed\n"),
        ["plan", "validate"],
        ["rollout.yaml:", "malformed YAML", "fix:"],
    ),
    "unknown phase on the command line": (
        lambda p: None,
        ["render", "--stack", "staging", "--phase", "ramp-90"],
        ["unknown phase 'ramp-90'", "pre-deployment, shadow, canary"],
    ),
    "unknown phase in the stack": (
        lambda p: (p / "Pulumi.staging.yaml").write_text(
            (p / "Pulumi.staging.yaml").read_text().replace("phase: pre-deployment", "phase: canery")
        ),
        ["render", "--stack", "staging"],
        ["Pulumi.staging.yaml", "memoryos-rollout:phase", "unknown phase 'canery'"],
    ),
    "unknown stack": (lambda p: None, ["render", "--stack", "qa"], ["unknown stack 'qa'", "production, staging"]),
    "unknown stack key": (
        lambda p: (p / "Pulumi.staging.yaml").write_text(
            (p / "Pulumi.staging.yaml").read_text() + "  memoryos-rollout:namespce: x\n"
        ),
        ["render", "--stack", "staging"],
        ["Pulumi.staging.yaml:", "namespce", "known keys"],
    ),
    "missing plan file": (
        lambda p: (p / "rollout.yaml").unlink(),
        ["plan", "validate"],
        ["rollout.yaml", "file not found"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_a_short_error_and_exit_2(project, case):
    breaker, args, expected = BAD[case]
    breaker(project)
    if args[0] == "plan":
        args = args + ([str(project / "rollout.yaml")] if args[1] == "validate" else [])
    r = (
        run(*args, "--project-dir", str(project), "--out", str(project / "out"))
        if args[0] == "render"
        else run(*args, cwd=project)
    )
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    for words in expected:
        assert words in r.stderr, f"{words!r} not in: {r.stderr}"
    assert len(r.stderr.splitlines()) <= 4


def test_analyze_takes_the_phase_the_samples_carry_and_refuses_a_run_across_two(tmp_path):
    """The Kubernetes load tests run `cutover analyze` without --phase: the samples carry the phase
    of the flags that answered them (X-Cutover-Phase). Two phases in one run are refused, not judged."""
    import random

    rng = random.Random(5)

    def write(path: Path, phases: list[str]) -> Path:
        lines = [
            json.dumps(
                {
                    "ts": 1000 + i * 0.01, "cohort": ("control", "treatment")[i % 2], "agent": f"a{i % 400}",
                    "op": "recall", "latency_ms": rng.uniform(5, 9), "ok": True, "status": 200,
                    "phase": phases[i * len(phases) // 4000],
                }
            )
            for i in range(4000)
        ]  # fmt: skip
        path.write_text("\n".join(lines) + "\n")
        return path

    one = run("analyze", str(write(tmp_path / "one.jsonl", ["ramp-25"])), "--out", str(tmp_path / "a1"))
    assert json.loads((tmp_path / "a1" / "verdict.json").read_text())["phase"] == "ramp-25", one.stdout + one.stderr
    two = run("analyze", str(write(tmp_path / "two.jsonl", ["canary", "ramp-25"])), "--out", str(tmp_path / "a2"))
    assert two.returncode == 2 and "the samples carry phases canary, ramp-25" in two.stderr, two.stderr
    assert "--phase" in two.stderr
