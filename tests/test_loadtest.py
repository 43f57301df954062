"""A short real Locust run (headless, bounded) against the gateway on loopback, judged by `cutover analyze`."""

from __future__ import annotations

import json
import subprocess
import sys

from cutover.judge.evidence import load_evidence_file
from cutover.judge.samples import load_samples

from .gatewayproc import gateway, project_copy


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cutover.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_locust_canary_run_gives_samples_the_judge_accepts(tmp_path):
    project = project_copy(tmp_path, analysis={"min_samples": 100})
    with gateway(tmp_path, "ramp-50", project) as g:
        samples = tmp_path / "samples.jsonl"
        r = cli(
            "loadtest",
            "canary",
            "--host",
            g.url,
            "--users",
            "8",
            "--spawn-rate",
            "8",
            "--run-time",
            "12s",
            "--samples",
            str(samples),
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        data = load_samples([samples])
        cohorts = {s.cohort for s in data}
        assert cohorts == {"control", "treatment"} and len(data) > 300
        recalls = [s for s in data if s.op == "recall" and s.ok]
        assert recalls and all(s.ids is not None and s.query for s in recalls)
        assert (tmp_path / "samples_stats.csv").is_file()  # Locust's own CSV beside the samples
        out = tmp_path / "analysis"
        a = cli(
            "analyze",
            str(samples),
            "--phase",
            "ramp-50",
            "--out",
            str(out),
            "--stack",
            "staging",
            "--file",
            str(project / "rollout.yaml"),
        )
        assert a.returncode in (0, 1, 3) and "Traceback" not in a.stderr, a.stderr
        ev = load_evidence_file(out / "verdict.json")
        assert ev.phase == "ramp-50" and ev.samples["control"] > 0 and ev.samples["treatment"] > 0
        assert ev.details["srm_p"] > 0.001  # the real 50 % split, read from the gateway's answers
        assert (out / "report.md").is_file() and (out / "latency.png").is_file()


def test_loadtest_refuses_a_remote_host():
    r = cli("loadtest", "canary", "--host", "http://10.1.2.3:8080")
    assert r.returncode == 2 and "loopback" in r.stderr


def test_analyze_rejects_files_that_are_not_samples(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text(json.dumps({"hello": 1}) + "\n")
    r = cli("analyze", str(bad), "--phase", "canary", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "x.jsonl:1" in r.stderr and "Traceback" not in r.stderr
