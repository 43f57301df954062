"""One shadow read: what MemoryOS answers to a recall legacy has answered, and the drift sample it
gives (`cutover.judge.drift`): parity drift, the gate's measure, and the ranking change, reported.

Run off the request path, in the gateway's child process or a thread of the gateway: three reads,
MemoryOS's own answer (an observation: no heat), MemoryOS asked for legacy's ids and legacy asked for
MemoryOS's ids, each with the recall's own filters. Works alike when MemoryOS is remote (the HTTP
store passes `ids` on)."""

from __future__ import annotations

from collections.abc import Callable

from cutover.judge.drift import pair_drift, parity_drift
from cutover.store.faults import FaultyStore
from cutover.store.interface import Store
from cutover.store.records import RecallQuery, Record, content_key


def answer_keys(records: list[Record]) -> list[tuple[str, str]]:
    """(id, content key) of each record of an answer, in its order: what the serving process hands
    to the shadow read (small, picklable)."""
    return [(r.id, content_key(r)) for r in records]


def shadow_sample(
    q: RecallQuery, legacy_answer: list[tuple[str, str]], memoryos: FaultyStore, legacy: Store, k: int, p: float
) -> tuple[float, float, float]:
    """(parity drift, Jaccard distance, RBO distance) of one shadow read. `memoryos` needs `observe`
    (a recall that heats nothing), `legacy` a `recall`."""
    legacy_top = dict(legacy_answer[:k])
    candidate = memoryos.observe(q)
    candidate_top = {r.id: content_key(r) for r in candidate[:k]}
    held = _held(memoryos.observe, q, legacy_top)
    # legacy holds what it returned; it is asked only for MemoryOS's records it did not return as they are
    unseen = {i: c for i, c in candidate_top.items() if legacy_top.get(i) != c}
    held_back = {**legacy_top, **_held(legacy.recall, q, unseen)}
    parity = parity_drift(legacy_top, held, candidate_top, held_back)
    jaccard, rbo_distance = pair_drift([i for i, _ in legacy_answer], [r.id for r in candidate], k, p)
    return parity, jaccard, rbo_distance


def _held(read: Callable[[RecallQuery], list[Record]], q: RecallQuery, wanted: dict[str, str]) -> dict[str, str]:
    """id -> content key of the `wanted` ids that the store behind `read` returns under q's filters."""
    if not wanted:
        return {}
    ask = q.model_copy(update={"ids": sorted(wanted), "limit": len(wanted)})
    return {r.id: content_key(r) for r in read(ask)}
