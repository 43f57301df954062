"""The Locust command line, in one place: `cutover loadtest` (which the rehearsal and the nightly
CronJob run) and the distributed master of the Kubernetes workloads build theirs here."""

from __future__ import annotations

SCENARIOS = ("canary", "soak", "baseline")
STOP_TIMEOUT_S = 5  # seconds a user gets to finish its request when the run time is up


def scenario_file(directory: str, scenario: str) -> str:
    """The locustfile of a scenario in a directory of scenarios (loadtests/, or its ConfigMap's mount)."""
    return f"{directory.rstrip('/')}/{scenario}.py"


def headless_args(
    locustfile: str, *, host: str, users: int, spawn_rate: float, run_time: str, samples: str, csv: str | None = None
) -> list[str]:
    """Options of a headless, time-bounded run writing per-request samples (after `locust`).

    `--exit-code-on-error 0`: failed requests are data for the judge, not a failed run."""
    args = [
        "-f",
        locustfile,
        "--headless",
        "-u",
        str(users),
        "-r",
        f"{spawn_rate:g}",
        "-t",
        run_time,
        "--host",
        host,
        "--samples",
        samples,
    ]
    if csv:
        args += ["--csv", csv]
    return [*args, "--only-summary", "--stop-timeout", str(STOP_TIMEOUT_S), "--exit-code-on-error", "0"]
