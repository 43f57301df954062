"""The one builder of a MemoryOS record from a legacy record: migrate, the mirror worker and
`reconcile --repair` all call it, so a legacy record becomes the same stored row whichever way it
arrives.

The result is a pure function of (record, policy, as-of): the tier by the policy evaluated at the
as-of (age rules such as `older_than: 30d` count back from it, never from the clock of the moment),
the lifecycle fields under `metadata.mem_os` (tier, chain_id, heat, promotion_score,
last_accessed_at, consolidation_version, persona_keys), and the provenance under
`metadata.migration` (run_id, as_of, legacy_namespace, policy, policy_hash). The run id names the
classification (policy hash and as-of), so two runs that classify alike write alike. Valid
`mem_os` fields already on the record are kept over computed ones (an invalid one, such as a tier
that is not short, mid or long, is replaced), and an existing provenance is kept as it is.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from cutover.migration.tiering import Policy
from cutover.plan.errors import CutoverError
from cutover.store.rows import Row, encode_values, record_of_row

TIERS = ("short", "mid", "long")
PROMOTION_SCORE = {"short": 0.2, "mid": 0.5, "long": 0.8}


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# what an existing mem_os field must be to be kept over the computed one
_VALID: dict[str, Any] = {
    "tier": lambda v: v in TIERS,
    "chain_id": lambda v: v is None or isinstance(v, str),
    "heat": _is_number,
    "promotion_score": _is_number,
    "last_accessed_at": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    "consolidation_version": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "persona_keys": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def parse_as_of(text: str | int | None) -> int | None:
    """`--as-of`: epoch milliseconds, or an ISO 8601 time (`2026-12-01T00:00:00Z`; no zone: UTC)."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text
    s = text.strip()
    if s.isdigit():
        return int(s)
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise CutoverError(
            f"bad --as-of {text!r}", fix="epoch milliseconds or an ISO 8601 time, e.g. 2026-12-01T00:00:00Z"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def run_id_of(policy: Policy, as_of: int) -> str:
    """The classification's name: the same policy at the same as-of gives the same id."""
    return hashlib.sha256(f"{policy.digest}\x1f{as_of}".encode()).hexdigest()[:12]


class Builder:
    """MemoryOS rows (COLUMNS order) from legacy record dicts, for one policy at one as-of."""

    def __init__(self, policy: Policy, as_of: int):
        self.policy, self.as_of = policy, as_of
        self.classify = policy.compile(as_of)
        self.run_id = run_id_of(policy, as_of)

    def row(self, rec: dict[str, Any]) -> tuple[Row, str, str, int]:
        """(row, tier, rule, existing mem_os fields kept over computed ones) of a valid legacy record
        (see `records.record_problem`)."""
        tier, rule = self.classify(rec)
        meta = rec.get("metadata")
        meta = dict(meta) if meta else {}
        existing = meta.get("mem_os")
        tags = rec.get("tags") or []
        ns, kind, observed = rec["namespace"], rec.get("kind"), rec.get("observed_at")
        if kind is None:  # as the API's Record: no kind (or null) is a note
            kind = "note"
        if observed is None:
            observed = self.as_of
        mo: dict[str, Any] = {
            "tier": tier,
            "chain_id": f"{ns}:{kind}",
            "heat": 0.0,
            "promotion_score": PROMOTION_SCORE[tier],
            "last_accessed_at": observed,
            "consolidation_version": 1,
            "persona_keys": sorted(t[8:] for t in tags if t.startswith("persona:") and len(t) > 8),
        }
        kept = 0
        if isinstance(existing, dict) and existing:
            valid = {k: v for k, v in existing.items() if k not in _VALID or _VALID[k](v)}
            kept = sum(1 for k, v in valid.items() if k in mo and mo[k] != v)
            mo = {**mo, **valid}
        meta["mem_os"] = mo
        if not isinstance(meta.get("migration"), dict):
            meta["migration"] = {
                "run_id": self.run_id,
                "as_of": self.as_of,
                "legacy_namespace": ns,
                "policy": self.policy.name,
                "policy_hash": self.policy.digest,
            }
        row = encode_values(
            ns,
            rec["id"],
            rec.get("version") or 1,
            rec.get("class", "episodic"),
            kind,
            rec.get("text", ""),
            rec.get("content"),
            sorted(set(tags)),
            rec.get("source"),
            observed,
            rec.get("expires_at"),
            meta,
        )
        return row, mo["tier"], rule, kept

    def record(self, rec: dict[str, Any]) -> tuple[dict[str, Any], str, str, int]:
        """The same as `row`, as a record dict (a JSONL target)."""
        row, tier, rule, kept = self.row(rec)
        return record_of_row(row), tier, rule, kept
