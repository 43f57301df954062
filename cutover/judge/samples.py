"""The judge's input: per-request samples (JSON lines a Locust run writes), read and checked, and the
recall answers paired by query."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


@dataclass
class Sample:
    ts: float
    cohort: str
    op: str
    latency_ms: float
    ok: bool
    status: int = 200
    ids: list[Any] | None = None
    query: str | None = None
    rss_mb: float | None = None
    agent: str | None = None  # the targeting key: the unit of randomization
    open_fds: float | None = None  # soak probes: the gateway's open files
    outbox_depth: float | None = None  # soak probes: unmirrored writes
    wal_frames: float | None = None  # soak probes: frames in the gateway's SQLite write-ahead logs
    phase: str | None = None  # the phase of the flags that answered (the gateway's X-Cutover-Phase)


class SampleError(ValueError):
    pass


def load_samples(paths: Iterable[Path]) -> list[Sample]:
    out: list[Sample] = []
    for path in paths:
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = orjson.loads(line)
                    out.append(
                        Sample(
                            float(d["ts"]),
                            d["cohort"],
                            d["op"],
                            float(d["latency_ms"]),
                            bool(d["ok"]),
                            int(d.get("status", 200)),
                            d.get("ids"),
                            d.get("query"),
                            d.get("rss_mb"),
                            d.get("agent"),
                            d.get("open_fds"),
                            d.get("outbox_depth"),
                            d.get("wal_frames"),
                            d.get("phase"),
                        )
                    )
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise SampleError(
                        f"{path}:{n}: not a sample ({exc}); need ts, cohort, op, latency_ms, ok"
                    ) from None
    return out


def samples_phase(samples: Iterable[Sample]) -> str:
    """The one phase the samples were answered in (their X-Cutover-Phase); SampleError when they
    carry none or several (the phase changed during the run: judge each part on its own)."""
    phases = sorted({s.phase for s in samples if s.phase})
    if len(phases) != 1:
        found = f"phases {', '.join(phases)}" if phases else "no phase (a gateway before X-Cutover-Phase)"
        raise SampleError(f"the samples carry {found}")
    return phases[0]


def complete_answers(pairs: list[tuple[list[Any], list[Any]]], k: int) -> list[tuple[list[Any], list[Any]]]:
    """The pairs whose first answer is complete (fewer than k records: every match), not both empty."""
    return [(c, t) for c, t in pairs if len(c) < k and (c or t)]


def answer_pairs(
    samples: Sequence[Sample],
) -> tuple[list[tuple[list[Any], list[Any]]], list[tuple[list[Any], list[Any]]]]:
    """Answers to the same query, in time order: (control, treatment) for each treatment answer with
    the latest control answer before it, and (control, control) for each control answer with the one
    before it (the noise floor)."""
    last: dict[str, list[Any]] = {}
    pairs, floor = [], []
    for s in sorted(samples, key=lambda s: s.ts):
        if not (s.op == "recall" and s.ok and s.query and s.ids is not None):
            continue
        prev = last.get(s.query)
        if s.cohort == "treatment" and prev is not None:
            pairs.append((prev, s.ids))
        elif s.cohort == "control":
            if prev is not None:
                floor.append((prev, s.ids))
            last[s.query] = s.ids
    return pairs, floor
