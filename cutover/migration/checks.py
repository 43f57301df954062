"""The record check of a migration's input: why a source object is not a valid legacy record."""

from __future__ import annotations

from cutover.store.records import MAX_TEXT, record_problem

CLASSES = frozenset({"episodic", "semantic", "procedural", "working"})


def problem(obj: object) -> str | None:
    """Why a source object is not a valid legacy record (None: it is). Exact types (what a JSON
    parser gives): the common case passes with one look at each field."""
    if type(obj) is not dict:
        return "not a JSON object"
    get = obj.get
    for key in ("id", "namespace"):
        v = get(key)
        if type(v) is not str or not v:
            return f"missing {key}" if v is None or v == "" else f"{key} is {type(v).__name__}, not a string"
    text = get("text", "")
    if type(text) is not str:
        return f"text is {type(text).__name__}, not a string"
    if len(text) > MAX_TEXT:
        return f"text of {len(text)} characters is over the limit of {MAX_TEXT}"
    cls = get("class", "episodic")
    if type(cls) is not str or cls not in CLASSES:
        return f"class {cls!r} is not one of {sorted(CLASSES)}"
    for key in ("kind", "source"):
        v = get(key)
        if v is not None and type(v) is not str:
            return f"{key} is {type(v).__name__}, not a string"
    tags = get("tags", [])
    if type(tags) is not list or any(type(t) is not str for t in tags):
        return "tags is not a list of strings"
    for key in ("observed_at", "expires_at", "version"):
        v = get(key)
        if v is not None and (type(v) is not int or v < 0):
            return f"{key} is not a non-negative integer (ms)"
    if type(get("metadata", {})) is not dict:
        return "metadata is not an object"
    return record_problem(obj)
