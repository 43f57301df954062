"""The record model: jido_memory's record plus MemoryOS lifecycle metadata and migration provenance.

A record is keyed by (namespace, id) and carries a version; a write with a lower version than the
stored one never replaces it, so retried and mirrored writes are idempotent.
MemoryOS lifecycle metadata lives under `metadata.mem_os`, provenance under `metadata.migration`.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RecordClass = Literal["episodic", "semantic", "procedural", "working"]
Tier = Literal["short", "mid", "long"]
MAX_TEXT = 64 * 1024
MAX_LIMIT = 1000
_WS = re.compile(r"\s+")


def now_ms() -> int:
    return int(time.time() * 1000)


class MemOS(BaseModel):
    """MemoryOS lifecycle metadata (`metadata.mem_os`)."""

    model_config = ConfigDict(extra="allow")

    tier: Tier
    chain_id: str | None = None
    heat: float = 0.0
    promotion_score: float = 0.0
    last_accessed_at: int | None = None
    consolidation_version: int = 1
    persona_keys: list[str] = Field(default_factory=list)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1, max_length=256)
    namespace: str = Field(min_length=1, max_length=256)
    class_: RecordClass = Field(default="episodic", alias="class")
    kind: str = "note"
    text: str = Field(default="", max_length=MAX_TEXT)
    content: Any = None
    tags: list[str] = Field(default_factory=list, max_length=256)
    source: str | None = None
    observed_at: int = Field(default_factory=now_ms, ge=0)
    expires_at: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = Field(default=1, ge=1)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return sorted(set(v))

    def dump(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.id

    @property
    def tier(self) -> str | None:
        mo = self.metadata.get("mem_os")
        return mo.get("tier") if isinstance(mo, dict) else None


def signature(rec: Record | dict) -> str:
    """What drift compares: id + normalized text."""
    d = rec.dump() if isinstance(rec, Record) else rec
    return f"{d['id']}|{_WS.sub(' ', str(d.get('text', ''))).strip().lower()}"


class RecallQuery(BaseModel):
    """A recall: jido_memory's filters plus free text for relevance."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    namespace: str = Field(min_length=1)
    query: str = Field(default="", max_length=4096, description="free text; legacy matches any term, MemoryOS ranks")
    classes: list[RecordClass] = Field(default_factory=list)
    tags_any: list[str] = Field(default_factory=list)
    tags_all: list[str] = Field(default_factory=list)
    text_contains: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int = Field(default=10, ge=1, le=MAX_LIMIT)
