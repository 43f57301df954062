"""Gate evidence (cutover.evidence/v1) and phase transitions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from cutover.judge.evidence import (
    Evidence,
    check_gate,
    check_transition,
    load_evidence,
    load_evidence_file,
    new_evidence,
)
from cutover.plan.campaign import PhaseClock
from cutover.plan.durations import readable_duration
from cutover.plan.errors import EvidenceError, TransitionError

from .conftest import FIXTURES, ROOT

EV = FIXTURES / "evidence"


def test_fixtures_load_and_round_trip(tmp_path):
    for f in sorted(EV.glob("*.json")):
        ev = load_evidence_file(f)
        again = tmp_path / f.name
        again.write_text(ev.to_json())
        assert load_evidence_file(again).model_dump(exclude={"source"}) == ev.model_dump(exclude={"source"})


def test_the_documented_example_is_valid_evidence():
    text = (ROOT / "runbooks" / "reference" / "evidence.md").read_text()
    block = text.split("```json", 1)[1].split("```", 1)[0]
    ev = Evidence.model_validate(json.loads(block))
    assert ev.kind == "verdict" and ev.passed


def test_gate_needs_passing_evidence_of_every_kind_the_previous_phase_lists(plan, evidence_dir):
    drift = load_evidence_file(evidence_dir / "shadow-drift-ready.json")
    assert check_gate(plan, "canary", [drift], "staging").passed
    assert not check_gate(plan, "canary", [drift], "production").passed  # evidence of another stack
    closed = check_gate(plan, "canary", [], "staging")
    assert not closed.passed and "no drift evidence from phase 'shadow'" in closed.reasons[0]
    assert check_gate(plan, "pre-deployment", [], "staging").passed


def test_the_newest_evidence_of_a_kind_wins(plan, evidence_dir):
    promote = load_evidence_file(evidence_dir / "canary-promote.json")
    rollback = load_evidence_file(evidence_dir / "canary-rollback-later.json")
    assert check_gate(plan, "ramp-25", [promote], "staging").passed
    result = check_gate(plan, "ramp-25", [promote, rollback], "staging")
    assert not result.passed and "ROLLBACK" in result.reasons[0] and "+31 %" in result.reasons[0]


def test_ramp_50_exit_needs_both_verdict_and_drill(plan):
    verdict = new_evidence("verdict", "ramp-50", "PROMOTE", stack="staging", plan_digest=plan.digest())
    result = check_gate(plan, "ramp-75", [verdict], "staging")
    assert not result.passed and any("no drill evidence" in r for r in result.reasons)
    drill = new_evidence("drill", "ramp-50", "PROMOTE", stack="staging", plan_digest=plan.digest())
    assert check_gate(plan, "ramp-75", [verdict, drill], "staging").passed


def test_evidence_counts_only_for_its_stack_its_plan_and_its_phase(plan):
    """Evidence with no stack, of another stack, judged under another plan, or collected before the
    phase began does not open the gate, and the gate says which and why."""
    digest, now = plan.digest(), time.time()

    def drift(**kw):
        return new_evidence("drift", "shadow", "PROMOTE", **{"stack": "staging", "plan_digest": digest, **kw})

    assert check_gate(plan, "canary", [drift()], "staging").passed
    for ev, why in [
        (drift(stack=None), "names no stack"),
        (drift(stack="production"), "for stack 'production'"),
        (drift(plan_digest=None), "names no plan digest"),
        (drift(plan_digest="sha256:0000000000000000"), "judged under plan sha256:0000000000000000"),
    ]:
        result = check_gate(plan, "canary", [ev], "staging")
        assert not result.passed and any(why in i for i in result.ignored), (why, result.ignored)
    # collected an hour before the phase began (a rollback started it anew): not counted
    old = drift().model_copy(update={"created_at": datetime.fromtimestamp(now - 3600, UTC)})
    result = check_gate(plan, "canary", [old], "staging", PhaseClock(now - 60, now + 3 * 86400))
    assert not result.passed and "before the phase began" in result.ignored[0]


def test_the_minimum_duration_of_the_phase_left_closes_the_gate_until_spent(plan):
    """shadow's minimum duration (the plan's 7d): a PROMOTE minutes after the phase began does not open
    canary; the refusal names the time left; once spent, the gate opens."""
    ev = new_evidence("drift", "shadow", "PROMOTE", stack="staging", plan_digest=plan.digest())
    began = ev.created_at.timestamp() - 600
    need = plan.phase("shadow").min_duration
    early = check_gate(plan, "canary", [ev], "staging", PhaseClock(began, began + 600))
    assert not early.passed and early.closed_by == [
        f"phase 'shadow' has a minimum duration of 7d: {readable_duration(need - 600)} left"
    ]
    with pytest.raises(TransitionError, match="minimum duration of 7d: 6d 23h 50m left"):
        check_transition(plan, "shadow", "canary", [ev], "staging", PhaseClock(began, began + 600))
    assert check_gate(plan, "canary", [ev], "staging", PhaseClock(began, began + need)).passed
    # the rehearsal's compressed clock: 7d / 100 000 is about 6 s
    assert check_gate(plan, "canary", [ev], "staging", PhaseClock(began, began + 7, 100_000)).passed
    # start unknown (a flag set no change recorded): said, and not held against the move
    unknown = check_gate(plan, "canary", [ev], "staging")
    assert unknown.passed and any("not checked" in r for r in unknown.reasons)


def test_transitions_forward_one_at_a_time_back_anywhere(plan, evidence_dir):
    drift = load_evidence_file(evidence_dir / "shadow-drift-ready.json")
    assert check_transition(plan, None, "pre-deployment", [], "staging")[0] == "start"
    assert check_transition(plan, "shadow", "canary", [drift], "staging")[0] == "forward"
    assert check_transition(plan, "ramp-75", "shadow", [], "staging")[0] == "back"
    assert check_transition(plan, "canary", "canary", [], "staging")[0] == "stay"
    with pytest.raises(TransitionError, match="phases advance one at a time") as info:
        check_transition(plan, "shadow", "ramp-25", [drift], "staging")
    assert "'canary'" in info.value.fix
    with pytest.raises(TransitionError, match="gate into 'canary' is closed"):
        check_transition(plan, "shadow", "canary", [], "staging")
    with pytest.raises(TransitionError, match="cannot start the campaign"):
        check_transition(plan, None, "canary", [], "staging")


def test_bad_evidence_names_file_and_field():
    with pytest.raises(EvidenceError) as info:
        load_evidence([FIXTURES / "bad-evidence"])
    assert info.value.field == "verdict" and "unknown-verdict.json" in info.value.file


def test_malformed_evidence_json(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"kind": "verdict",\n "phase": }')
    with pytest.raises(EvidenceError) as info:
        load_evidence_file(f)
    assert info.value.line == 2 and "malformed JSON" in info.value.message


def test_a_directory_store_keeps_every_item_and_the_gate_reads_it(plan, tmp_path):
    """`cutover.ops.evidencestore` with a directory: one file per item under <phase>/, none overwritten."""
    from cutover.ops.evidencestore import load_store, save

    a = new_evidence("drift", "shadow", "HOLD", stack="staging", plan_digest=plan.digest(), reasons=["spike"])
    b = new_evidence("drift", "shadow", "PROMOTE", stack="staging", plan_digest=plan.digest())
    paths = [save(tmp_path, a), save(tmp_path, b)]
    assert len(set(paths)) == 2 and all("/shadow/drift-" in p for p in paths)
    items = load_store([str(tmp_path)])
    assert sorted(e.verdict for e in items) == ["HOLD", "PROMOTE"]
    assert check_gate(plan, "canary", items, "staging").passed  # the newest wins
