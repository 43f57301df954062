"""The record model: jido_memory's record plus MemoryOS lifecycle metadata and migration provenance.

A record is keyed by (namespace, id) and carries a version; a write with a lower version than the
stored one never replaces it, so retried and mirrored writes are idempotent.
MemoryOS lifecycle metadata lives under `metadata.mem_os`, provenance under `metadata.migration`.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

RecordClass = Literal["episodic", "semantic", "procedural", "working"]
CLASSES = frozenset(get_args(RecordClass))
Tier = Literal["short", "mid", "long"]
MAX_TEXT = 64 * 1024
MAX_LIMIT = 1000

# Keys. An id is one segment; a namespace is segments joined by "/". A segment is ASCII letters,
# digits and `_ . : @ + = ~ -`, starting with a letter, a digit or `_` (so no "", ".", ".." and no
# leading "-"): nothing that a URL, a path, SQLite's JSON functions or a shell would read differently.
SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.:@+=~-]*"
ID_PATTERN = rf"^{SEGMENT}$"
NAMESPACE_PATTERN = rf"^{SEGMENT}(?:/{SEGMENT})*$"
MAX_KEY = 256
# Values: every integer a signed 64-bit one (SQLite's and orjson's range), every float finite, every
# string valid Unicode (no lone surrogates), JSON nested at most MAX_DEPTH deep (the gateway's
# plan setting gateway.max_json_depth can only lower it).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 64


class TooBig:
    """An integer literal too long to convert (json.loads(parse_int=...)): reported, never built."""

    def __init__(self, digits: str):
        self.digits = digits


class NotFinite:
    """NaN or Infinity in JSON text (json.loads(parse_constant=...)): reported, never stored."""

    def __init__(self, text: str):
        self.text = text


def parse_int(text: str) -> int | TooBig:
    return int(text) if len(text) <= 20 else TooBig(text)


def _path(path: tuple[str | int, ...]) -> str:
    out = ""
    if len(path) > 12:  # a deep path: its start and its depth
        path = (*path[:6], f"…{len(path) - 6} more levels")
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "body"


def _string_problem(s: str) -> str | None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (not valid Unicode)"
    return None


def json_problem(value: Any, max_depth: int = MAX_DEPTH, path: tuple[str | int, ...] = ()) -> str | None:
    """Why a decoded JSON value cannot be stored as it is ("field.path: reason"), or None.
    Iterative, so hostile nesting cannot exhaust the stack."""
    stack = [(value, path, 0)]
    while stack:
        v, where, depth = stack.pop()
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            if not INT_MIN <= v <= INT_MAX:
                return f"{_path(where)}: integer out of the signed 64-bit range"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return f"{_path(where)}: {v} is not a finite number"
        elif isinstance(v, str):
            bad = _string_problem(v)
            if bad:
                return f"{_path(where)}: {bad}"
        elif isinstance(v, TooBig):
            return f"{_path(where)}: integer of {len(v.digits)} digits is out of the signed 64-bit range"
        elif isinstance(v, NotFinite):
            return f"{_path(where)}: {v.text} is not a number JSON allows"
        elif isinstance(v, dict | list):
            if depth >= max_depth:
                return f"{_path(where)}: nested deeper than {max_depth} levels"
            if isinstance(v, dict):
                for k, item in v.items():
                    if not isinstance(k, str):
                        return f"{_path(where)}: key {k!r} is not a string"
                    bad = _string_problem(k)
                    if bad:
                        return f"{_path(where)}: a key {bad}"
                    stack.append((item, (*where, k), depth + 1))
            else:
                stack.extend((item, (*where, i), depth + 1) for i, item in enumerate(v))
        else:
            return f"{_path(where)}: {type(v).__name__} is not a JSON value"
    return None


def mem_os_problem(metadata: Any) -> str | None:
    """Why `metadata.mem_os` has fields of the wrong type (the store's tier columns read them), or None."""
    mo = metadata.get("mem_os") if isinstance(metadata, dict) else None
    if mo is None:
        return None
    if not isinstance(mo, dict):
        return "metadata.mem_os: not an object"
    for key in ("heat", "promotion_score"):
        v = mo.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            return f"metadata.mem_os.{key}: {type(v).__name__}, not a number"
    for key in ("last_accessed_at", "consolidation_version"):
        v = mo.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            return f"metadata.mem_os.{key}: {type(v).__name__}, not an integer"
    for key in ("tier", "chain_id"):
        v = mo.get(key)
        if v is not None and not isinstance(v, str):
            return f"metadata.mem_os.{key}: {type(v).__name__}, not a string"
    return None


_ID_RE, _NS_RE = re.compile(ID_PATTERN), re.compile(NAMESPACE_PATTERN)


def record_problem(obj: object) -> str | None:
    """Why a decoded record object (the migration's input, a store row's record dict) cannot be stored
    as it is, or None: the one record check of what a JSON parser gives. Exact types first (the common
    case passes with one look at each field), then the key patterns, string fields, 64-bit integers
    and storable JSON values, as `Record` checks them field by field (`Record` also bounds the
    lengths of kind, source and tags: the API's limits, which a migration does not apply)."""
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
    for key, pattern in (("id", _ID_RE), ("namespace", _NS_RE)):
        v = obj.get(key)
        if isinstance(v, str) and (len(v) > MAX_KEY or not pattern.match(v)):
            return f"{key} {v[:80]!r} does not match {pattern.pattern}"
    for key in ("observed_at", "expires_at", "version"):
        v = obj.get(key)
        if isinstance(v, int) and v > INT_MAX:
            return f"{key} is out of the signed 64-bit range"
    return json_problem(obj, MAX_DEPTH) or mem_os_problem(obj.get("metadata"))


def _checked(v: Any, field: str) -> Any:
    bad = json_problem(v, MAX_DEPTH, (field,))
    if bad:
        raise ValueError(bad)
    return v


def _valid_str(v: str) -> str:
    bad = _string_problem(v)
    if bad:
        raise ValueError(bad)
    return v


def now_ms() -> int:
    return int(time.time() * 1000)


class MemOS(BaseModel):
    """MemoryOS lifecycle metadata (`metadata.mem_os`)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    tier: Tier
    chain_id: str | None = None
    heat: float = 0.0
    promotion_score: float = 0.0
    last_accessed_at: int | None = None
    consolidation_version: int = 1
    persona_keys: list[str] = Field(default_factory=list)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    id: str = Field(min_length=1, max_length=MAX_KEY, pattern=ID_PATTERN)
    namespace: str = Field(min_length=1, max_length=MAX_KEY, pattern=NAMESPACE_PATTERN)
    class_: RecordClass = Field(default="episodic", alias="class")
    kind: str = Field(default="note", max_length=256)
    text: str = Field(default="", max_length=MAX_TEXT)
    content: Any = None
    tags: list[str] = Field(default_factory=list, max_length=256)
    source: str | None = Field(default=None, max_length=4096)
    observed_at: int = Field(default_factory=now_ms, ge=0, le=INT_MAX, strict=True)
    expires_at: int | None = Field(default=None, ge=0, le=INT_MAX, strict=True)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = Field(default=1, ge=1, le=INT_MAX, strict=True)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for t in v:
            _valid_str(t)
        return sorted(set(v))

    @field_validator("kind", "text", "source")
    @classmethod
    def _strings(cls, v: str | None) -> str | None:
        return v if v is None else _valid_str(v)

    @field_validator("content")
    @classmethod
    def _content(cls, v: Any) -> Any:
        return _checked(v, "content")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = json_problem(v, MAX_DEPTH, ("metadata",)) or mem_os_problem(v)
        if bad:
            raise ValueError(bad)
        return v

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def wire(self) -> dict[str, Any]:
        """The record as the API answers it: equal to `dump()` (every value is already JSON: a record
        is validated, or read back from what a store validated), built without pydantic's serializer
        (0.7 us against 1.5 us, 3.0 us with MemoryOS's metadata; a recall answers ten). The nested
        values are the record's own, not copies: serialize it, do not change it."""
        d = self.__dict__
        return {
            "id": d["id"],
            "namespace": d["namespace"],
            "class": d["class_"],
            "kind": d["kind"],
            "text": d["text"],
            "content": d["content"],
            "tags": d["tags"],
            "source": d["source"],
            "observed_at": d["observed_at"],
            "expires_at": d["expires_at"],
            "metadata": d["metadata"],
            "version": d["version"],
        }

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.id

    @property
    def tier(self) -> str | None:
        mo = self.metadata.get("mem_os")
        return mo.get("tier") if isinstance(mo, dict) else None


_FIELDS = frozenset(Record.model_fields)
_new = object.__new__
_set = object.__setattr__


def stored_record(
    namespace: str,
    id: str,
    version: int,
    class_: str,
    kind: str | None,
    text: str,
    content: Any,
    tags: list[str],
    source: str | None,
    observed_at: int,
    expires_at: int | None,
    metadata: dict[str, Any],
) -> Record:
    """A record from values a store validated when it wrote them: what `Record.model_construct` gives
    (no validation, every field set), in a third of its time (1.7 us against 5.2 us here; a recall
    decodes each record it returns). `tests/test_stores.py` holds the two equal."""
    rec = _new(Record)
    _set(
        rec,
        "__dict__",
        {
            "id": id,
            "namespace": namespace,
            "class_": class_,
            "kind": kind,
            "text": text,
            "content": content,
            "tags": tags,
            "source": source,
            "observed_at": observed_at,
            "expires_at": expires_at,
            "metadata": metadata,
            "version": version,
        },
    )
    _set(rec, "__pydantic_fields_set__", set(_FIELDS))
    _set(rec, "__pydantic_extra__", None)
    _set(rec, "__pydantic_private__", None)
    return rec


# metadata a MemoryOS store adds to a record (lifecycle, and the provenance of a migrated or mirrored
# copy): not part of what a record says, so not part of its content
STORE_METADATA = ("mem_os", "migration")


def content_key(rec: Record) -> str:
    """A record's identity and content, the unit of data parity: id, version and a 64-bit digest of
    every field a recall returns (class, kind, text, content, tags, source, observed_at, expires_at,
    metadata but what a store adds to it, `STORE_METADATA`). Two stores hold the same record when
    the keys are equal; a record present but altered (text, tags, class, expiry, ...) has another."""
    d = rec.__dict__
    meta = d["metadata"]
    if any(k in meta for k in STORE_METADATA):
        meta = {k: v for k, v in meta.items() if k not in STORE_METADATA}
    body = (
        d["class_"],
        d["kind"],
        d["text"],
        d["content"],
        d["tags"],
        d["source"],
        d["observed_at"],
        d["expires_at"],
        meta,
    )
    digest = hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()
    return f"{d['id']}|{d['version']}|{digest}"


class RecallQuery(BaseModel):
    """A recall: jido_memory's filters plus free text for relevance."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    namespace: str = Field(min_length=1, max_length=MAX_KEY, pattern=NAMESPACE_PATTERN)
    query: str = Field(default="", max_length=4096, description="free text; legacy matches any term, MemoryOS ranks")
    classes: list[RecordClass] = Field(default_factory=list)
    tags_any: list[str] = Field(default_factory=list, max_length=256)
    tags_all: list[str] = Field(default_factory=list, max_length=256)
    text_contains: str | None = Field(default=None, max_length=4096)
    since: int | None = Field(default=None, ge=INT_MIN, le=INT_MAX)
    until: int | None = Field(default=None, ge=INT_MIN, le=INT_MAX)
    limit: int = Field(default=10, ge=1, le=MAX_LIMIT)
    ids: list[str] = Field(
        default_factory=list,
        max_length=MAX_LIMIT,
        description="only records with these ids, beside the other filters (empty: any record); "
        "the drift check asks each store for the other's answer this way",
    )

    @field_validator("tags_any", "tags_all", "ids")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for t in v:
            _valid_str(t)
        return v

    @field_validator("query", "text_contains")
    @classmethod
    def _strings(cls, v: str | None) -> str | None:
        return v if v is None else _valid_str(v)
