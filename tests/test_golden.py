"""The committed golden files (tests/golden/) are what the renderers write today."""

from __future__ import annotations

import shutil

import yaml

from . import golden


def test_golden_files_are_fresh():
    assert golden.stale() == [], "regenerate with `make golden` and review the diff"


def test_a_hand_edit_of_a_golden_file_is_caught(tmp_path):
    copy = tmp_path / "golden"
    shutil.copytree(golden.GOLDEN, copy)
    rules = copy / "staging" / "canary" / "rules.yml"
    rules.write_text(rules.read_text().replace("> 0.03", "> 0.3", 1))
    (copy / "staging" / "canary" / "extra.yaml").write_text("kind: Leftover\n")
    (copy / "production" / "full" / "flags.json").unlink()
    assert golden.stale(copy) == ["production/full/flags.json", "staging/canary/extra.yaml", "staging/canary/rules.yml"]


def test_rules_read_as_written():
    text = (golden.GOLDEN / "staging" / "canary" / "rules.yml").read_text()
    assert text.startswith("# the Prometheus rules of stack staging, phase canary, plan sha256:")
    assert "do not edit" in text.splitlines()[1]
    assert "{}" not in text  # no empty selectors
    assert "expr: |-\n" in text  # multi-line expressions as literal blocks
    rules = yaml.safe_load(text)
    assert {g["name"] for g in rules["groups"]} >= {"cutover-abort-triggers", "cutover-meta"}
