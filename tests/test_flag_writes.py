"""No write of the flags overwrites another unseen: every write names the version it read and is
refused (FlagsChangedError, nothing written) when the flags changed since. Real flag files, real
threads and processes, the real `cutover flags` command; the FeatureFlag's compare-and-swap against
a real API server is in tests/e2e/test_featureflag_writes.py."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cutover.flags.backend import FlagFile, Snapshot
from cutover.flags.change import change
from cutover.flags.state import Change, FlagState, render_state, state_of
from cutover.ops.controller import Controller
from cutover.plan.errors import FlagsChangedError
from cutover.plan.model import load_plan

from .conftest import ROOT

STACK = "staging"


def seeded(path: Path, state: FlagState = FlagState("ramp-50")) -> FlagFile:
    flags = FlagFile(path)
    flags.write(render_state(load_plan(ROOT / "rollout.yaml"), state, STACK))
    return flags


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def test_of_two_changes_from_the_same_read_the_second_is_refused_and_the_first_stays(plan, tmp_path):
    flags = seeded(tmp_path / "flags.json")
    seen = flags.read_versioned()
    before = state_of(seen.flags())
    first = change(
        flags, plan, STACK, before, FlagState("ramp-50", kill_switch=True),
        seen=seen, by="manual", reason="INC-7: p99 doubled",
    )  # fmt: skip
    with pytest.raises(FlagsChangedError) as refused:
        change(
            flags, plan, STACK, before, FlagState("ramp-50", percentage=40),
            seen=seen, by="controller", reason="CutoverDriftHigh", level="partial",
        )  # fmt: skip
    assert flags.read() == first.doc and state_of(flags.read()) == FlagState("ramp-50", kill_switch=True)
    said = str(refused.value)
    assert "changed since they were read" in said and "not written" in said
    assert "by manual" in said and iso(first.change.at) in said and "INC-7: p99 doubled" in said
    assert refused.value.fix == (
        f"read the flags again: `cutover flags --flags-file {flags.path}` shows them, then repeat the change"
    )
    # the change read after the first one is written
    again = flags.read_versioned()
    assert again.version == first.stored.version
    change(flags, plan, STACK, state_of(again.flags()), FlagState("ramp-50", True, 40), seen=again, by="controller")
    assert state_of(flags.read()) == FlagState("ramp-50", True, 40)


def test_a_hand_edit_without_a_recorded_change_refuses_a_write_too(plan, tmp_path):
    """The flag file's version is its content hash: an edit that records no change (someone with an
    editor) is a change all the same."""
    flags = seeded(tmp_path / "flags.json")
    seen = flags.read_versioned()
    doc = seen.flags()
    doc["flags"][plan.flag_keys.kill_switch]["defaultVariant"] = "on"
    flags.path.write_text(json.dumps(doc))
    with pytest.raises(FlagsChangedError, match="a writer that recorded no change at an unrecorded time"):
        change(flags, plan, STACK, state_of(seen.flags()), FlagState("ramp-25"), seen=seen, by="manual")
    assert flags.read() == doc


def attempt(flags: FlagFile, plan: Any, seen: Snapshot, n: int, by: str) -> tuple[str, str] | None:
    """One change to a state of its own (percentage n/4) from `seen`: (version read, version
    written), or None when it was refused."""
    state = FlagState("ramp-50", percentage=n / 4)
    try:
        applied = change(flags, plan, STACK, state_of(seen.flags()), state, seen=seen, by=by, reason=f"change {n}")
    except FlagsChangedError:
        return None
    return seen.version, applied.stored.version


def assert_one_chain(start: str, done: list[tuple[str, str]], final: str) -> None:
    """The changes that succeeded form one history: each was made from the version the previous one
    wrote (none from a version another success had already replaced), and the last is on disk."""
    after = dict(done)
    assert len(after) == len(done), "two changes succeeded from the same read: one was lost"
    version, walked = start, 0
    while version in after:
        version, walked = after[version], walked + 1
    assert walked == len(done) and version == final


def test_in_rounds_of_threads_racing_from_one_read_exactly_one_change_wins(plan, tmp_path):
    """Each round, four threads read the same version, then all write: one succeeds, three are
    refused, and the file holds the winner's flags."""
    flags = seeded(tmp_path / "flags.json")
    start = flags.read_versioned().version
    threads, rounds = 4, 12
    barrier = threading.Barrier(threads, timeout=60)  # a writer that fails breaks it for all
    done: list[tuple[str, str]] = []

    def racer(t: int) -> list[tuple[int, tuple[str, str] | None]]:
        mine = FlagFile(flags.path)  # each writer its own handle, as two processes have
        out = []
        for r in range(rounds):
            seen = mine.read_versioned()
            barrier.wait()  # every thread has read before any writes
            out.append((r, attempt(mine, plan, seen, r * threads + t, f"writer-{t}")))
            barrier.wait()  # every thread has written (or been refused) before the next round reads
        return out

    with ThreadPoolExecutor(threads) as pool:
        results = [x for f in [pool.submit(racer, t) for t in range(threads)] for x in f.result()]
    for r in range(rounds):
        won = [res for rr, res in results if rr == r and res is not None]
        assert len(won) == 1, f"round {r}: {len(won)} changes succeeded from one read"
        done += won
    assert_one_chain(start, done, flags.read_versioned().version)


def process_writer(path: str, worker: int, changes: int) -> list[tuple[str, str] | None]:
    """A separate process changing the flags as fast as it can (read, change, repeat)."""
    plan = load_plan(ROOT / "rollout.yaml")
    flags = FlagFile(Path(path))
    return [
        attempt(flags, plan, flags.read_versioned(), worker * changes + i, f"process-{worker}") for i in range(changes)
    ]


def test_processes_changing_the_flags_at_once_never_lose_a_change_silently(plan, tmp_path):
    """Four processes change the flag file freely: every change either succeeded, and was made from
    the flags the previous success wrote, or was refused; none vanished."""
    flags = seeded(tmp_path / "flags.json")
    start = flags.read_versioned().version
    workers, changes = 4, 40
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.starmap(process_writer, [(str(flags.path), w, changes) for w in range(workers)])
    outcomes = [x for r in results for x in r]
    assert len(outcomes) == workers * changes
    done = [x for x in outcomes if x is not None]
    assert done, "no change succeeded"
    assert_one_chain(start, done, flags.read_versioned().version)
    print(f"{len(done)} changes written, {len(outcomes) - len(done)} refused")


class Interleaved(FlagFile):
    """A flag file another writer changes between a read and the next write (`others` run, one
    per write, right before it): the interleaving of two writers, made deterministic."""

    def __init__(self, path: Path, others: list[Callable[[], object]]):
        super().__init__(path)
        self.others = others

    def write(self, doc: dict[str, Any], expect: str | None = None) -> Snapshot:
        if self.others:
            self.others.pop(0)()
        return super().write(doc, expect)


def by_hand(path: Path, plan: Any, state: FlagState, reason: str) -> Callable[[], object]:
    def write() -> object:
        flags = FlagFile(path)
        seen = flags.read_versioned()
        return change(flags, plan, STACK, state_of(seen.flags()), state, seen=seen, by="manual", reason=reason)

    return write


def test_the_controller_does_not_roll_back_again_what_on_call_rolled_back_further_meanwhile(plan, tmp_path):
    path = seeded(tmp_path / "flags.json").path
    on_call = by_hand(path, plan, FlagState("ramp-50", kill_switch=True), "INC-9: kill switch")
    flags = Interleaved(path, [on_call])
    ctrl = Controller(plan, STACK, flags, "s3cret", tmp_path / "rollbacks.jsonl", clock=lambda: 1000.0)
    assert ctrl.rollback("CutoverTreatmentErrorRateHigh", "partial") is None
    assert state_of(flags.read()) == FlagState("ramp-50", kill_switch=True)
    assert flags.read()["metadata"]["changeReason"] == "INC-9: kill switch"
    assert ctrl.history == [] and not (tmp_path / "rollbacks.jsonl").exists()
    assert ctrl.status()["ignored"] == [
        {"at": 1000.0, "trigger": "CutoverTreatmentErrorRateHigh", "reason": "flags changed concurrently"}
    ]


def test_the_controller_still_rolls_back_when_the_change_meanwhile_did_not_go_as_far(plan, tmp_path):
    """On-call lowered the treatment to 40 % while the controller aimed at 25 % (the previous
    ramp's): the controller decides again from 40 % and rolls back to 25 %."""
    path = seeded(tmp_path / "flags.json").path
    on_call = by_hand(path, plan, FlagState("ramp-50", percentage=40), "INC-9: a bit less")
    flags = Interleaved(path, [on_call])
    ctrl = Controller(plan, STACK, flags, "s3cret", tmp_path / "rollbacks.jsonl", clock=lambda: 1000.0)
    r = ctrl.rollback("CutoverTreatmentErrorRateHigh", "partial")
    assert r is not None and "40 %" in r.before and "25 %" in r.after
    assert state_of(flags.read()) == FlagState("ramp-50", percentage=25)
    assert flags.read()["metadata"]["changedBy"] == "controller" and ctrl.ignored == []
    # the hold-down is kept: the next alert within it is ignored as before
    assert ctrl.rollback("CutoverTreatmentErrorRateHigh", "partial") is None
    assert ctrl.ignored[-1]["reason"].startswith("hold-down")


def test_the_controller_decides_once_more_only_and_a_second_conflict_reaches_alertmanager(plan, tmp_path):
    """Changed again before its second write: the controller writes nothing and the webhook answers
    503, so Alertmanager sends the alert again."""
    from starlette.testclient import TestClient

    from cutover.ops.webhook import controller_app

    path = seeded(tmp_path / "flags.json").path
    others = [by_hand(path, plan, FlagState("ramp-50", percentage=p), f"INC-9: {p} %") for p in (45, 40)]
    flags = Interleaved(path, others)
    ctrl = Controller(plan, STACK, flags, "s3cret", tmp_path / "rollbacks.jsonl")
    labels = {
        "alertname": "CutoverDriftHigh",
        "severity": "critical",
        "action": "rollback",
        "rollback_level": "partial",
    }
    firing = {"alerts": [{"status": "firing", "labels": labels}]}
    r = TestClient(controller_app(ctrl)).post("/alertmanager", json=firing, headers={"X-Cutover-Secret": "s3cret"})
    assert r.status_code == 503 and "changed since they were read" in r.json()["error"]
    assert state_of(flags.read()) == FlagState("ramp-50", percentage=40) and ctrl.history == []


def lock_waiters(lock_file: Path, pid: int) -> bool:
    """Whether process `pid` waits for the flock on `lock_file` (/proc/locks lists waiters with ->)."""
    inode = os.stat(lock_file).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 1] == "FLOCK":
            rest = fields[fields.index("->") + 1 :]
            if rest[3] == str(pid) and rest[4].rsplit(":", 1)[-1] == str(inode):
                return True
    return False


def test_cutover_flags_refuses_its_change_when_the_controller_wrote_after_its_read(plan, tmp_path):
    """`cutover flags --kill-switch on` reads, then waits for the writers' lock the test holds; the
    controller's rollback lands meanwhile; the command exits 2 naming it, and writes nothing."""
    import fcntl

    flags = seeded(tmp_path / "flags.json")
    flags.lock_path.touch()
    cmd = [sys.executable, "-m", "cutover", "flags", "--flags-file", str(flags.path), "--project-dir", str(ROOT)]
    with open(flags.lock_path) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen(
            [*cmd, "--kill-switch", "on"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while not lock_waiters(flags.lock_path, proc.pid):  # it has read the flags and waits to write
            assert proc.poll() is None and time.monotonic() < deadline, "cutover flags never reached its write"
            time.sleep(0.05)
        controller = render_state(plan, FlagState("ramp-25"), STACK, Change("controller", "CutoverDriftHigh", "full"))
        tmp = flags.path.with_suffix(".other")
        tmp.write_text(json.dumps(controller))
        os.replace(tmp, flags.path)  # the controller's write (it holds the lock: here, the test does)
        fcntl.flock(held, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err, out + err
    assert "changed since they were read" in err and "by controller" in err and "CutoverDriftHigh" in err
    assert f"cutover flags --flags-file {flags.path}" in err
    assert flags.read() == controller and "set and verified" not in out
