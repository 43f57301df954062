"""Tier classification policy: which MemoryOS tier a legacy record lands in. First match wins.

A policy file (YAML) lists rules; each has a `when` (all conditions must hold; none = always) and a
`tier` (short | mid | long, or keep: the record's existing `metadata.mem_os.tier`). Conditions:
class, kind, tags_any, tags_all, text_length_min, text_length_max, older_than, newer_than,
expires_within, has_tier. An unknown condition is an error that names it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cutover.plan.durations import Duration
from cutover.plan.errors import CutoverError
from cutover.plan.yamlsrc import SourceFile

DEFAULT_POLICY = """\
name: default
rules:
  - {name: existing-tier, when: {has_tier: true}, tier: keep}
  - {name: tag-short-term, when: {tags_any: [short_term]}, tier: short}
  - {name: tag-mid-term, when: {tags_any: [mid_term]}, tier: mid}
  - {name: tag-long-term, when: {tags_any: [long_term]}, tier: long}
  - {name: semantic, when: {class: [semantic]}, tier: long}
  - {name: working, when: {class: [working]}, tier: short}
  - {name: expires-within-1h, when: {expires_within: 1h}, tier: short}
  - {name: older-than-30d, when: {older_than: 30d}, tier: long}
  - {name: otherwise, tier: mid}
"""


class PolicyError(CutoverError):
    """The classification policy is invalid."""


class When(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    class_: list[str] | None = Field(default=None, alias="class")
    kind: list[str] | None = None
    tags_any: list[str] | None = None
    tags_all: list[str] | None = None
    text_length_min: int | None = Field(default=None, ge=0)
    text_length_max: int | None = Field(default=None, ge=0)
    older_than: Duration | None = None
    newer_than: Duration | None = None
    expires_within: Duration | None = None
    has_tier: bool | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    when: When = Field(default_factory=When)
    tier: Literal["short", "mid", "long", "keep"]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)
    digest: str = ""

    @model_validator(mode="after")
    def _catch_all(self) -> Policy:
        if self.rules[-1].when != When() or self.rules[-1].tier == "keep":
            raise ValueError("the last rule must match everything (no `when`) and name a tier, so every record lands")
        return self

    def compile(self, now_ms: int) -> Callable[[dict[str, Any]], tuple[str, str]]:
        """A fast classifier over record dicts: returns (tier, rule name)."""
        tests = [(_predicate(r.when, now_ms), r.tier, r.name) for r in self.rules]

        def classify(rec: dict[str, Any]) -> tuple[str, str]:
            for test, tier, name in tests:
                if test(rec):
                    if tier == "keep":
                        return rec["metadata"]["mem_os"]["tier"], name
                    return tier, name
            raise AssertionError("unreachable: the last rule matches everything")

        return classify


def _existing_tier(rec: dict[str, Any]) -> str | None:
    mo = (rec.get("metadata") or {}).get("mem_os")
    tier = mo.get("tier") if isinstance(mo, dict) else None
    return tier if tier in ("short", "mid", "long") else None


def _observed(rec: dict[str, Any], now: int) -> int:
    """A record's observed_at; one without (absent or null) is observed at the as-of, as migrate stores it."""
    at = rec.get("observed_at")
    return now if at is None else at


def _predicate(w: When, now: int) -> Callable[[dict[str, Any]], bool]:
    # Each check closes over its own precomputed value (assigned once, never rebound).
    checks: list[Callable[[dict[str, Any]], bool]] = []
    if w.has_tier is not None:
        want_tier = w.has_tier
        checks.append(lambda r: (_existing_tier(r) is not None) == want_tier)
    if w.class_:
        classes = frozenset(w.class_)
        checks.append(lambda r: r.get("class", "episodic") in classes)
    if w.kind:
        kinds = frozenset(w.kind)
        checks.append(lambda r: r.get("kind") in kinds)
    if w.tags_any:
        tags_any = frozenset(w.tags_any)
        checks.append(lambda r: not tags_any.isdisjoint(r.get("tags") or ()))
    if w.tags_all:
        tags_all = frozenset(w.tags_all)
        checks.append(lambda r: tags_all.issubset(r.get("tags") or ()))
    if w.text_length_min is not None:
        min_length = w.text_length_min
        checks.append(lambda r: len(r.get("text") or "") >= min_length)
    if w.text_length_max is not None:
        max_length = w.text_length_max
        checks.append(lambda r: len(r.get("text") or "") <= max_length)
    if w.older_than is not None:
        older_before = now - w.older_than * 1000
        checks.append(lambda r: _observed(r, now) < older_before)
    if w.newer_than is not None:
        newer_from = now - w.newer_than * 1000
        checks.append(lambda r: _observed(r, now) >= newer_from)
    if w.expires_within is not None:
        expires_by = now + w.expires_within * 1000
        checks.append(lambda r: r.get("expires_at") is not None and r["expires_at"] <= expires_by)
    if not checks:
        return lambda r: True
    if len(checks) == 1:
        return checks[0]
    return lambda r: all(c(r) for c in checks)


def load_policy(path: str | Path | None = None) -> Policy:
    if path is None:
        text, data = DEFAULT_POLICY, yaml.safe_load(DEFAULT_POLICY)
        policy = Policy.model_validate(data)
    else:
        src = SourceFile(Path(path), PolicyError)
        text = Path(path).read_text(encoding="utf-8")
        policy = src.validate(Policy)
    return policy.model_copy(update={"digest": "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]})
