"""What a migration run did: records read, migrated, unchanged, quarantined, by tier and by rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counts:
    read: int = 0
    migrated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    skipped_other_shards: int = 0
    kept_existing_fields: int = 0
    by_tier: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def merge(self, other: Counts) -> None:
        for k, v in other.__dict__.items():
            if isinstance(v, dict):
                mine = getattr(self, k)
                for kk, vv in v.items():
                    mine[kk] = mine.get(kk, 0) + vv
            else:
                setattr(self, k, getattr(self, k) + v)
