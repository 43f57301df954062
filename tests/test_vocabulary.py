"""The benchmarks' 25-word vocabulary has one definition (benchmarks/vocabulary.py); the copies that
cannot import it (the Locust workload, shipped alone in a ConfigMap, and the wrk Lua scripts) are
held to it here."""

from __future__ import annotations

import ast
import re

from benchmarks.vocabulary import WORDS

from .conftest import ROOT


def test_the_locust_workload_starts_with_the_benchmarks_vocabulary():
    tree = ast.parse((ROOT / "cutover/loadtests/workload.py").read_text(encoding="utf-8"))
    vocab = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "VOCAB" for t in node.targets)
    )
    assert len(WORDS) == 25 and vocab[: len(WORDS)] == WORDS


def test_the_wrk_scripts_take_the_first_twenty_words():
    for name in ("wrk_recall.lua", "wrk_remember.lua"):
        text = (ROOT / "benchmarks" / name).read_text(encoding="utf-8")
        block = re.search(r"local words = \{(.*?)\}", text, re.S)
        assert block is not None, name
        assert re.findall(r'"([^"]+)"', block.group(1)) == WORDS[:20], name
