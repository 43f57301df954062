"""Gate evidence (cutover.evidence/v1) and phase transitions."""

from __future__ import annotations

import json

import pytest

from cutover.judge.evidence import (
    Evidence,
    check_gate,
    check_transition,
    load_evidence,
    load_evidence_file,
    new_evidence,
)
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


def test_gate_needs_passing_evidence_of_every_kind_the_previous_phase_lists(plan):
    drift = load_evidence_file(EV / "shadow-drift-ready.json")
    assert check_gate(plan, "canary", [drift], "staging").passed
    assert not check_gate(plan, "canary", [drift], "production").passed  # evidence of another stack
    closed = check_gate(plan, "canary", [], "staging")
    assert not closed.passed and "no drift evidence from phase 'shadow'" in closed.reasons[0]
    assert check_gate(plan, "pre-deployment", [], "staging").passed


def test_the_newest_evidence_of_a_kind_wins(plan):
    promote = load_evidence_file(EV / "canary-promote.json")
    rollback = load_evidence_file(EV / "canary-rollback-later.json")
    assert check_gate(plan, "ramp-25", [promote], "staging").passed
    result = check_gate(plan, "ramp-25", [promote, rollback], "staging")
    assert not result.passed and "ROLLBACK" in result.reasons[0] and "+31 %" in result.reasons[0]


def test_ramp_50_exit_needs_both_verdict_and_drill(plan):
    verdict = new_evidence("verdict", "ramp-50", "PROMOTE", stack="staging")
    result = check_gate(plan, "ramp-75", [verdict], "staging")
    assert not result.passed and any("no drill evidence" in r for r in result.reasons)
    drill = new_evidence("drill", "ramp-50", "PROMOTE", stack=None)  # applies to every stack
    assert check_gate(plan, "ramp-75", [verdict, drill], "staging").passed


def test_transitions_forward_one_at_a_time_back_anywhere(plan):
    drift = load_evidence_file(EV / "shadow-drift-ready.json")
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
