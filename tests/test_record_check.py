"""One record check: `record_problem` (the migration's fast check of decoded JSON) and the `Record`
model (the API's and the stores') accept and refuse the same objects. Property-based (hypothesis):
objects near the record's shape, with each field sometimes of a wrong type or value."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cutover.store.records import INT_MAX, Record, record_problem

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=8)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
key = st.one_of(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}", fullmatch=True), st.text(max_size=6), st.integers())
integer = st.one_of(
    st.integers(-2, 3), st.sampled_from([INT_MAX, INT_MAX + 1, 2**70]), st.booleans(), st.floats(0, 10), st.none()
)
mem_os = st.fixed_dictionaries(
    {},
    optional={
        "tier": st.one_of(st.sampled_from(["short", "mid", "long"]), st.integers()),
        "heat": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=2), st.booleans()),
        "last_accessed_at": st.one_of(st.integers(0, 10), st.floats(0, 1)),
    },
)
record_like = st.fixed_dictionaries(
    {"id": key, "namespace": st.one_of(key, st.just("agents/a1"))},
    optional={
        "text": st.one_of(st.text(max_size=10), st.integers()),
        "class": st.one_of(st.sampled_from(["episodic", "semantic", "procedural", "other"]), st.integers()),
        "kind": st.one_of(st.text(max_size=5), st.none(), st.integers()),
        "source": st.one_of(st.text(max_size=5), st.none(), st.integers()),
        "tags": st.one_of(st.lists(st.text(max_size=4), max_size=3), st.lists(st.integers(), min_size=1, max_size=2)),
        "observed_at": integer,
        "expires_at": integer,
        "version": integer,
        "content": json_value,
        "metadata": st.one_of(
            st.dictionaries(st.text(max_size=4), json_value, max_size=2),
            st.fixed_dictionaries({"mem_os": mem_os}),
            st.lists(st.integers(), max_size=1),
        ),
    },
)


def model_problem(obj: dict[str, Any]) -> str | None:
    try:
        Record.model_validate(obj)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    return None


def as_migrated(obj: dict[str, Any]) -> dict[str, Any]:
    """What migrate makes of the fields it defaults (`migration.build`): no version or version 0 is
    version 1, no observation time is the run's as-of, no kind is a note."""
    d = dict(obj)
    if d.get("version") in (None, 0) and type(d.get("version")) is not bool:
        d["version"] = 1
    if d.get("observed_at") is None:
        d["observed_at"] = 0
    if d.get("kind", "note") is None:
        d["kind"] = "note"
    return d


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_like)
def test_the_fast_check_and_the_model_agree(obj):
    fast, model = record_problem(obj), model_problem(as_migrated(obj))
    assert (fast is None) == (model is None), (obj, fast, model)
