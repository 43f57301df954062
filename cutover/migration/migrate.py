"""Migration: legacy records -> MemoryOS, classified into tiers, with lifecycle and provenance backfilled.

Sources and targets are URIs: `jsonl:PATH` (an export, one JSON object a line) or `sqlite:PATH` (a
store: a source is read as legacy, a target written as MemoryOS). Work goes in batches; after each
batch a durable checkpoint records the source position, in the target's own transaction for a
SQLite target (so a crash leaves neither a duplicate nor a gap), or beside a JSONL target with its
byte offset (the target is cut back to it on resume). Bad records go to a quarantine file with
their line or id and reason and never stop the run unless on_error="halt".
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cutover.migration.build import Builder
from cutover.migration.counts import Counts
from cutover.migration.options import MigrationError, Options, parse_uri, run_key
from cutover.migration.sources import average_line_bytes, jsonl_chunks, sqlite_source
from cutover.migration.targets import JsonlTarget, SqliteTarget, checkpoint_as_of
from cutover.migration.workers import (
    ChunkSpec,
    _batched,
    _init_worker,
    _ordered,
    _pool,
    effective_workers,
    prepare_items,
    prepare_jsonl_chunk,
)
from cutover.store.records import now_ms


def migrate(o: Options) -> dict[str, Any]:
    src_kind, src_path = parse_uri(o.source)
    dst_kind, dst_path = parse_uri(o.target)
    if src_kind == "jsonl" and not src_path.is_file():
        raise MigrationError("no such file", file=str(src_path), fix="check the jsonl: path")
    if o.on_error not in ("quarantine", "halt"):
        raise MigrationError(f"unknown --on-error {o.on_error!r}", fix="use quarantine or halt")
    key = run_key(o)
    started = time.monotonic()
    as_of = o.as_of if o.as_of is not None else now_ms()
    if not o.restart and not o.dry_run:
        began = checkpoint_as_of(o.target, key)  # a resumed run keeps the as-of it began with
        if began is not None:
            if o.as_of is not None and o.as_of != began:
                raise MigrationError(
                    f"this run began at as-of {began}, not {o.as_of}",
                    fix=f"resume with --as-of {began} (or without --as-of), or start over with --restart",
                )
            as_of = began
    builder = Builder(o.policy, as_of)
    spec = ChunkSpec(
        o.source,
        o.policy,
        as_of,
        o.namespaces,
        o.shard,
        o.on_error,
        rows=dst_kind == "sqlite" and not o.dry_run,
    )
    workers = effective_workers(o, src_kind)
    pool = _pool(workers, spec) if workers > 1 else None  # started before any file is opened
    target = (
        None
        if o.dry_run
        else (SqliteTarget(dst_path, o.defer_index) if dst_kind == "sqlite" else JsonlTarget(dst_path))
    )
    if target is not None:
        target.as_of = as_of
    qpath = o.quarantine or dst_path.with_name(dst_path.name + ".quarantine.jsonl")
    counts, position, q_offset, resumed, uncommitted = Counts(), None, 0, False, 0
    ckpt = target.checkpoint(key) if target and not o.restart else None
    if ckpt:
        position, q_offset, resumed = ckpt.position, ckpt.quarantine_offset, True
        counts = Counts(**ckpt.counts)
    qfile = None
    if not o.dry_run:
        Path(qpath).parent.mkdir(parents=True, exist_ok=True)
        qfile = open(qpath, "ab")
        qfile.truncate(q_offset)
        qfile.seek(0, os.SEEK_END)
    if src_kind == "jsonl":
        chunk_bytes = max(4096, min(o.batch, o.chunk) * average_line_bytes(src_path, position))
        chunks = jsonl_chunks(src_path, position, chunk_bytes)
        if pool is not None:
            results = _ordered(pool, chunks, workers)
        else:
            _init_worker(spec)
            results = (prepare_jsonl_chunk(*c) for c in chunks)
    else:
        wanted = set(o.namespaces) if o.namespaces else None
        _init_worker(spec)
        results = (
            prepare_items(batch) for batch in _batched(sqlite_source(src_path, position, wanted), min(o.batch, o.chunk))
        )

    try:
        for chunk in results:
            counts.merge(chunk.counts)
            if target is not None and (chunk.out or chunk.quarantined or chunk.position):
                if chunk.quarantined:
                    assert qfile is not None  # opened whenever there is a target (not a dry run)
                    qfile.write(b"".join(chunk.quarantined))
                    qfile.flush()
                    os.fsync(qfile.fileno())
                    q_offset = qfile.tell()
                uncommitted += len(chunk.out)
                commit = uncommitted >= o.batch or chunk.halted is not None
                target.write(chunk.out, key, chunk.position or position or "", q_offset, counts, commit=commit)
                if commit:
                    uncommitted = 0
            if chunk.halted:
                raise MigrationError(
                    f"bad record at {chunk.halted[0]}: {chunk.halted[1]}",
                    file=o.source,
                    fix="fix the record, or run with --on-error quarantine",
                )
            if o.progress:
                o.progress(counts, int(chunk.position or 0) if src_kind == "jsonl" else counts.read)
        if target:
            target.commit()
            target.finish()
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if qfile:
            qfile.close()
        if target:
            target.close()
    elapsed = time.monotonic() - started
    return {
        "source": o.source,
        "target": o.target,
        "dry_run": o.dry_run,
        "resumed": resumed,
        "run_key": key,
        "run_id": builder.run_id,
        "as_of": as_of,
        "policy": {"name": o.policy.name, "hash": o.policy.digest},
        "shard": f"{o.shard[0]}/{o.shard[1]}" if o.shard else None,
        "quarantine_file": None if o.dry_run else str(qpath),
        "elapsed_s": round(elapsed, 3),
        "rate_per_s": round(counts.read / elapsed, 1) if elapsed else None,
        **counts.as_dict(),
    }
