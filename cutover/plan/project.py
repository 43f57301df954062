"""Where a project lives, and what the installed package ships with it.

A project is a directory holding `Pulumi.yaml`, the stack files (`Pulumi.<stack>.yaml`) and its plan
(`rollout.yaml`). Commands that need one take `--project-dir`; without it they look in the working
directory and its parents. The package itself ships the default plan and the Locust scenarios, read
through `importlib.resources`, so `pip install cutover` works from any directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from cutover.plan.errors import CutoverError

PROJECT_FILE = "Pulumi.yaml"
PLAN_FILE = "rollout.yaml"


def bundled_plan() -> Path:
    """The default plan shipped in the package (the repository's `rollout.yaml`)."""
    return Path(str(files("cutover").joinpath("plan", PLAN_FILE)))


def loadtests_dir() -> Path:
    """The Locust scenarios shipped in the package (the repository's `loadtests/`)."""
    return Path(str(files("cutover").joinpath("loadtests")))


def find_project(explicit: Path | None = None, start: Path | None = None) -> Path:
    """`explicit` when given (it must hold Pulumi.yaml); else the nearest directory at or above
    `start` (default: the working directory) that holds Pulumi.yaml."""
    if explicit is not None:
        if not (explicit / PROJECT_FILE).is_file():
            raise CutoverError(
                f"no {PROJECT_FILE} in {explicit}",
                fix="pass --project-dir the directory of the cutover project (it holds Pulumi.yaml)",
            )
        return explicit
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / PROJECT_FILE).is_file():
            return directory
    raise CutoverError(
        f"no cutover project in {here} or above (no {PROJECT_FILE}): run inside the project's "
        "checkout or pass --project-dir DIR"
    )


def plan_file(explicit: Path | None = None) -> Path:
    """The plan a command reads: `explicit`; else the plan of the project around the working
    directory; else the bundled default plan."""
    if explicit is not None:
        return explicit
    try:
        return find_project() / PLAN_FILE
    except CutoverError:
        return bundled_plan()
