"""Repair after a reconciliation: copy what is missing or stale from the source (the source of truth)
into the target, each record built as migrate builds it, and clear the dead letters that are done."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cutover.migration.build import Builder
from cutover.migration.compare import compare, default_as_of
from cutover.migration.options import MigrationError, parse_uri
from cutover.migration.sides import Tiers, rows
from cutover.migration.tiering import Policy
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MEMORYOS_APP_ID, MemoryOSStore
from cutover.store.rows import TEXT, VERSION, Row, legacy_of_row


def repair(
    source: str,
    target: str,
    policy: Policy,
    namespaces: list[str] | None = None,
    window: tuple[int, int] | None = None,
    delete_extra: bool = False,
    batch: int = 2000,
    compare_tier: bool = True,
    as_of: int | None = None,
) -> dict[str, Any]:
    """Copy what is missing or stale in the target from the source (the source of truth). Into a
    MemoryOS store each record is built as migrate builds it (`build.Builder`, at `default_as_of`),
    so a plain reconcile after it has parity; into a legacy store (after a rollback) rows go as they
    are. A record whose tier differs from the policy's is stale too (unless compare_tier is False).
    Dead-lettered mirror copies of keys now equal on both sides are cleared."""
    skind, spath = parse_uri(source)
    tkind, tpath = parse_uri(target)
    if skind != "sqlite" or tkind != "sqlite":
        raise MigrationError("repair works between stores", fix="use sqlite: URIs for --source and --target")
    if not spath.is_file():
        raise MigrationError("no such store", file=str(spath), fix="check the sqlite: path")
    kind = target_kind(spath, tpath)
    src, dst = LegacyStore(spath), (MemoryOSStore if kind == "memoryos" else LegacyStore)(tpath)
    at = default_as_of(source, target, as_of)
    tiers = Tiers(policy, at)
    builder = Builder(policy, at) if kind == "memoryos" else None
    wanted = set(namespaces) if namespaces else None
    target_rows = {(r.namespace, r.id): r for r in rows(target, tiers, wanted, window)}
    copied = stale = deleted = 0
    keys: list[tuple[str, str]] = []

    def copy() -> None:
        got = src.get_rows(keys)
        out = [got[k] for k in keys if k in got]
        if builder is not None:
            out = [builder.row(legacy_of_row(row))[0] for row in out]
        if out:
            dst.put_rows(out)
        keys.clear()

    seen = set()
    for r in rows(source, tiers, wanted, window):
        key = (r.namespace, r.id)
        seen.add(key)
        t = target_rows.get(key)
        if t is not None:
            if t.version > r.version:
                continue  # the target is newer: not the source's to overwrite; reported by compare()
            tiers.resolve(r, t)
            tiers.resolve(t, r)
            if (t.version, t.text) == (r.version, r.text) and (not compare_tier or t.tier == r.tier):
                continue
        keys.append(key)
        copied += t is None
        stale += t is not None
        if len(keys) >= batch:
            copy()
    if keys:
        copy()
    if delete_extra:
        for key in set(target_rows) - seen:
            deleted += dst.delete(*key)
    cleared = clear_dead_letters(src, dst)
    after = compare(source, target, policy, namespaces, window, compare_tier=compare_tier, as_of=as_of)
    return {
        "copied_missing": copied,
        "replaced_stale": stale,
        "deleted_extra": deleted,
        "dead_letters_cleared": cleared,
        "as_of": at,
        "target_kind": kind,
        "after": after,
    }


def target_kind(source: Path, target: Path) -> str:
    """What the target of a repair is: memoryos or legacy. A store says so itself (MemoryOS stores
    carry their marker, `memoryos.MEMORYOS_APP_ID`); an absent or empty target is the other kind
    than the source (legacy -> MemoryOS, or back after a rollback)."""
    kind = store_kind(target)
    if kind is not None:
        return kind
    return "legacy" if store_kind(source) == "memoryos" else "memoryos"


def store_kind(path: Path) -> str | None:
    """memoryos (marked as such), legacy (records, no marker), or None (no store, or an empty one)."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] == MEMORYOS_APP_ID:
            return "memoryos"
        try:
            any_record = conn.execute("SELECT 1 FROM records LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # not a store (yet)
            return None
    finally:
        conn.close()
    return "legacy" if any_record else None


def clear_dead_letters(*stores: LegacyStore | MemoryOSStore) -> int:
    """Delete the dead-lettered mirror copies (in these stores' files: the gateway's in-store
    outboxes) of keys the two stores now hold alike (same version and text, or both without the
    record): what the copy was to do is done. Returns how many went."""
    a, b = stores[0], stores[-1]
    cleared = 0
    for store in stores:
        c = store._conn()
        dead = c.execute("SELECT seq, namespace, id FROM dead_letter").fetchall()
        if not dead:
            continue
        keys = [(ns, i) for _, ns, i in dead]
        ra, rb = a.get_rows(keys), b.get_rows(keys)

        def alike(x: Row | None, y: Row | None) -> bool:  # rows in COLUMNS order: the same version and text
            return (x is None and y is None) or (
                x is not None and y is not None and (x[VERSION], x[TEXT]) == (y[VERSION], y[TEXT])
            )

        done = [seq for seq, ns, i in dead if alike(ra.get((ns, i)), rb.get((ns, i)))]
        if done:
            with store._write:
                c.execute("BEGIN IMMEDIATE")
                c.executemany("DELETE FROM dead_letter WHERE seq = ?", [(s,) for s in done])
                c.execute("COMMIT")
            cleared += len(done)
    return cleared
