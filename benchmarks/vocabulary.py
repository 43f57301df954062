"""The benchmarks' vocabulary: 25 words the generated records' text and the recall queries draw from.

The one definition: gateway_bench.py and migration_bench.py import it, openloop.py (run as a script,
benchmarks/ first on its path) too. Three copies cannot import it and are held to it by
tests/test_vocabulary.py: the Locust workload's VOCAB (cutover/loadtests/workload.py, shipped alone
in a ConfigMap, so it imports nothing of the repository) starts with these words, and the wrk
scripts (wrk_recall.lua, wrk_remember.lua) take the first 20 of them, as openloop.py does.
"""

from __future__ import annotations

WORDS = [
    "apple",
    "travel",
    "plan",
    "meeting",
    "budget",
    "project",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "mountain",
    "coffee",
    "invoice",
    "contract",
    "launch",
    "design",
    "review",
    "memory",
    "agent",
    "tool",
    "search",
    "index",
    "vector",
    "chart",
]
