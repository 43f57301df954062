"""Migration and reconciliation on real SQLite stores and JSONL exports, through the CLI as users run it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from cutover.migration.options import shard_of
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import Record

DAY = 86_400_000
NOW = int(time.time() * 1000)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cutover.cli", *args], capture_output=True, text=True, timeout=timeout)


def write_jsonl(path, records) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


TIER_CASES = [
    ("existing", {"metadata": {"mem_os": {"tier": "long", "heat": 7.0}}, "class": "working"}, "long"),
    ("tag-short", {"tags": ["short_term"], "class": "semantic"}, "short"),
    ("tag-mid", {"tags": ["mid_term"]}, "mid"),
    ("tag-long", {"tags": ["long_term"]}, "long"),
    ("semantic", {"class": "semantic"}, "long"),
    ("working", {"class": "working"}, "short"),
    ("expiring", {"expires_at": NOW + 30 * 60_000}, "short"),
    ("old", {"observed_at": NOW - 45 * DAY}, "long"),
    ("default", {}, "mid"),
]


def test_each_tier_rule_lands_in_its_tier_with_persona_keys_and_provenance(tmp_path):
    recs = [
        {
            "id": name,
            "namespace": "agents/a",
            "text": f"record {name}",
            "observed_at": NOW - DAY,
            **extra,
            "tags": ["persona:alice", *extra.get("tags", [])],
        }
        for name, extra, _ in TIER_CASES
    ]
    write_jsonl(tmp_path / "export.jsonl", recs)
    r = cli(
        "migrate",
        "--from",
        f"jsonl:{tmp_path / 'export.jsonl'}",
        "--to",
        f"sqlite:{tmp_path / 'mos.db'}",
        "--report",
        str(tmp_path / "report.json"),
    )
    assert r.returncode == 0, r.stderr
    store = MemoryOSStore(tmp_path / "mos.db")
    for name, _, tier in TIER_CASES:
        rec = store.get("agents/a", name)
        mo, mig = rec.metadata["mem_os"], rec.metadata["migration"]
        assert mo["tier"] == tier, name
        assert mo["persona_keys"] == ["alice"] and mo["chain_id"] and mo["consolidation_version"] == 1
        assert (
            mig["legacy_namespace"] == "agents/a"
            and mig["policy"] == "default"
            and mig["policy_hash"].startswith("sha256:")
        )
    existing = store.get("agents/a", "existing").metadata["mem_os"]
    assert existing["heat"] == 7.0  # existing fields kept, not overwritten
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["migrated"] == len(TIER_CASES) and report["kept_existing_fields"] == 1
    rc = cli(
        "reconcile",
        "--source",
        f"jsonl:{tmp_path / 'export.jsonl'}",
        "--target",
        f"sqlite:{tmp_path / 'mos.db'}",
        "--report",
        str(tmp_path / "rc"),
    )
    assert rc.returncode == 0 and "parity: yes" in rc.stdout, rc.stdout + rc.stderr
    rep = json.loads((tmp_path / "rc" / "reconcile.json").read_text())["report"]
    assert (
        rep["per_namespace"]["agents/a"]["tiers"]["long"]["source_checksum"]
        == rep["per_namespace"]["agents/a"]["tiers"]["long"]["target_checksum"]
    )
    assert "| agents/a | long |" in (tmp_path / "rc" / "reconcile.md").read_text()


def test_bad_records_are_quarantined_with_their_reason(tmp_path):
    good = {"id": "ok", "namespace": "n", "text": "fine"}
    lines = [
        good,
        "{not json",
        {"namespace": "n", "text": "no id"},
        {"id": "x", "text": "no ns"},
        {"id": 5, "namespace": "n"},
        {"id": "t", "namespace": "n", "tags": "a,b"},
        {"id": "big", "namespace": "n", "text": "x" * 70_000},
        {"id": "c", "namespace": "n", "class": "dream"},
    ]
    write_jsonl(tmp_path / "e.jsonl", lines)
    r = cli("migrate", "--from", f"jsonl:{tmp_path / 'e.jsonl'}", "--to", f"sqlite:{tmp_path / 'm.db'}")
    assert r.returncode == 0, r.stderr
    q = [json.loads(x) for x in (tmp_path / "m.db.quarantine.jsonl").read_text().splitlines()]
    reasons = {x["where"]: x["reason"] for x in q}
    assert len(q) == 7 and MemoryOSStore(tmp_path / "m.db").count() == 1
    assert reasons["line 2"].startswith("malformed JSON") and reasons["line 3"] == "missing id"
    assert reasons["line 4"] == "missing namespace" and "not a string" in reasons["line 5"]
    assert "tags" in reasons["line 6"] and "over the limit" in reasons["line 7"] and "class" in reasons["line 8"]
    halt = cli(
        "migrate",
        "--from",
        f"jsonl:{tmp_path / 'e.jsonl'}",
        "--to",
        f"sqlite:{tmp_path / 'h.db'}",
        "--on-error",
        "halt",
    )
    assert halt.returncode == 2 and "line 2" in halt.stderr and "Traceback" not in halt.stderr


def test_dry_run_writes_nothing(tmp_path):
    write_jsonl(tmp_path / "e.jsonl", [{"id": f"r{i}", "namespace": "n", "text": "t"} for i in range(10)])
    r = cli("migrate", "--from", f"jsonl:{tmp_path / 'e.jsonl'}", "--to", f"sqlite:{tmp_path / 'm.db'}", "--dry-run")
    assert r.returncode == 0 and "dry run" in r.stdout and "10" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl"]


def test_kill_mid_run_then_resume_gives_exact_parity(tmp_path):
    n = 60_000
    write_jsonl(
        tmp_path / "e.jsonl", [{"id": f"r{i}", "namespace": f"ns{i % 13}", "text": f"text {i}"} for i in range(n)]
    )
    args = [
        sys.executable,
        "-m",
        "cutover.cli",
        "migrate",
        "--from",
        f"jsonl:{tmp_path / 'e.jsonl'}",
        "--to",
        f"sqlite:{tmp_path / 'm.db'}",
        "--batch",
        "500",
    ]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store_path = tmp_path / "m.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once some batches are in, well before the end
        time.sleep(0.05)
        if store_path.exists():
            try:
                done = MemoryOSStore(store_path).count()
            except Exception:
                continue
            if done >= 5_000:
                break
    p.send_signal(signal.SIGKILL)
    p.wait()
    partial = MemoryOSStore(store_path).count()
    assert 0 < partial < n, partial
    r = cli(
        "migrate",
        "--from",
        f"jsonl:{tmp_path / 'e.jsonl'}",
        "--to",
        f"sqlite:{store_path}",
        "--batch",
        "500",
        "--report",
        str(tmp_path / "resume.json"),
    )
    report = json.loads((tmp_path / "resume.json").read_text())
    assert r.returncode == 0 and report["resumed"] and report["read"] == n and report["migrated"] == n
    assert MemoryOSStore(store_path).count() == n
    rc = cli("reconcile", "--source", f"jsonl:{tmp_path / 'e.jsonl'}", "--target", f"sqlite:{store_path}")
    assert rc.returncode == 0, rc.stdout
    again = cli(
        "migrate",
        "--from",
        f"jsonl:{tmp_path / 'e.jsonl'}",
        "--to",
        f"sqlite:{store_path}",
        "--restart",
        "--report",
        str(tmp_path / "again.json"),
    )
    report = json.loads((tmp_path / "again.json").read_text())
    assert again.returncode == 0 and report["unchanged"] == n and report["migrated"] == 0  # idempotent re-run


def test_shards_cover_every_record_exactly_once(tmp_path):
    legacy = LegacyStore(tmp_path / "legacy.db")
    legacy.put_many([Record(id=f"r{i}", namespace=f"tenant-{i % 37}", text=f"t{i}") for i in range(2000)])
    seen: dict[tuple[str, str], int] = {}
    for i in range(4):
        r = cli(
            "migrate",
            "--from",
            f"sqlite:{tmp_path / 'legacy.db'}",
            "--to",
            f"sqlite:{tmp_path / f'shard{i}.db'}",
            "--shard",
            f"{i}/4",
        )
        assert r.returncode == 0, r.stderr
        for rec in MemoryOSStore(tmp_path / f"shard{i}.db").scan():
            seen[rec.key] = seen.get(rec.key, 0) + 1
            assert shard_of(rec.namespace, 4) == i
    assert len(seen) == 2000 and set(seen.values()) == {1}
    assert (
        cli("migrate", "--from", f"sqlite:{tmp_path / 'legacy.db'}", "--to", "sqlite:x.db", "--shard", "4/4").returncode
        == 2
    )


def test_reconcile_repair_restores_parity_after_writes_only_memoryos_received(tmp_path):
    legacy, mos = LegacyStore(tmp_path / "legacy.db"), MemoryOSStore(tmp_path / "mos.db")
    legacy.put_many([Record(id=f"r{i}", namespace="n", text=f"t{i}") for i in range(100)])
    assert (
        cli("migrate", "--from", f"sqlite:{tmp_path / 'legacy.db'}", "--to", f"sqlite:{tmp_path / 'mos.db'}").returncode
        == 0
    )
    # the incident window: MemoryOS took writes legacy never saw (new records and a newer version)
    mos.put(Record(id="new1", namespace="n", text="only in memoryos"))
    mos.put(Record(id="r5", namespace="n", text="t5 edited", version=2))
    src, dst = f"sqlite:{tmp_path / 'mos.db'}", f"sqlite:{tmp_path / 'legacy.db'}"
    check = cli("reconcile", "--source", src, "--target", dst, "--report", str(tmp_path / "before"))
    assert check.returncode == 1 and "missing in target 1" in check.stdout and "mismatched 1" in check.stdout
    fix = cli("reconcile", "--source", src, "--target", dst, "--repair", "--report", str(tmp_path / "after"))
    assert fix.returncode == 0 and "1 copied, 1 stale replaced" in fix.stdout, fix.stdout
    assert legacy.get("n", "new1").text == "only in memoryos" and legacy.get("n", "r5").version == 2
    assert "Parity: yes" in (tmp_path / "after" / "reconcile.md").read_text()


def test_unknown_policy_field_is_named(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "name: p\nrules:\n  - {name: a, when: {colour: red}, tier: long}\n  - {name: z, tier: mid}\n"
    )
    write_jsonl(tmp_path / "e.jsonl", [{"id": "a", "namespace": "n"}])
    r = cli(
        "migrate",
        "--from",
        f"jsonl:{tmp_path / 'e.jsonl'}",
        "--to",
        f"sqlite:{tmp_path / 'm.db'}",
        "--policy",
        str(tmp_path / "p.yaml"),
    )
    assert r.returncode == 2 and "rules[0].when.colour" in r.stderr and "p.yaml:3" in r.stderr, r.stderr


def test_a_summary_from_byte_ranges_adds_up_to_the_whole(tmp_path):
    """reconcile splits a large export into byte ranges summarized in parallel: the parts, whatever
    the cuts, must add up to the summary of the whole file."""
    from cutover.migration.compare import Scope, _merge, summarize
    from cutover.migration.tiering import load_policy

    recs = [
        {
            "id": f"r{i}",
            "namespace": f"agents/{i % 13}",
            "text": f"note {i} " * (i % 5 + 1),
            "class": "semantic" if i % 3 else "working",
        }
        for i in range(3000)
    ]
    write_jsonl(tmp_path / "e.jsonl", recs)
    uri, size = f"jsonl:{tmp_path / 'e.jsonl'}", (tmp_path / "e.jsonl").stat().st_size
    whole = summarize(uri, load_policy(), Scope(as_of=NOW))
    for parts in (2, 3, 7):
        cuts = [size * i // parts for i in range(parts + 1)]
        total: dict = {}
        for i in range(parts):
            _merge(total, summarize(uri, load_policy(), Scope(as_of=NOW), (cuts[i], cuts[i + 1])))
        assert total == whole
    assert sum(v["*"][0] for v in whole.values()) == 3000


def test_a_crash_inside_a_batch_of_several_chunks_resumes_from_its_last_commit(tmp_path, monkeypatch):
    """A batch (one transaction) spans several worker chunks: a crash in its third chunk takes back
    its first two as well, and the resume redoes exactly them: no gap, no duplicate."""
    from cutover.migration import migrate as migration
    from cutover.migration.options import Options
    from cutover.migration.targets import SqliteTarget
    from cutover.migration.tiering import load_policy

    n = 2_000
    write_jsonl(
        tmp_path / "e.jsonl", [{"id": f"r{i}", "namespace": f"ns{i % 7}", "text": f"text {i}"} for i in range(n)]
    )
    opts = dict(
        source=f"jsonl:{tmp_path / 'e.jsonl'}",
        target=f"sqlite:{tmp_path / 'm.db'}",
        policy=load_policy(None),
        batch=300,
        chunk=100,
        workers=1,
    )
    real_write, calls = SqliteTarget.write, []

    def crashing_write(self, rows, *args, commit=True):
        calls.append((len(rows), commit))
        if len(calls) == 9:  # the third chunk of the third batch
            raise KeyboardInterrupt("crash")
        return real_write(self, rows, *args, commit=commit)

    monkeypatch.setattr(SqliteTarget, "write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        migration.migrate(Options(**opts))
    assert [c for _, c in calls[:8]] == [False, False, True, False, False, True, False, False]
    committed = sum(n for n, _ in calls[:6])  # chunks are ~100 records (cut at line ends by size)
    assert 500 < committed < 700 and MemoryOSStore(tmp_path / "m.db").count() == committed  # the third batch undone
    monkeypatch.setattr(SqliteTarget, "write", real_write)
    report = migration.migrate(Options(**opts))
    assert report["resumed"] and report["read"] == n and report["migrated"] == n and report["unchanged"] == 0
    assert MemoryOSStore(tmp_path / "m.db").count() == n


def _stored_rows(path) -> list[tuple]:
    """Every stored row of a store, every column, in key order: what byte-for-byte comparisons compare."""
    import sqlite3

    from cutover.store.rows import COLUMNS

    with sqlite3.connect(path) as c:
        return c.execute(f"SELECT {COLUMNS} FROM records ORDER BY namespace, id").fetchall()


def _boundary_export(path, as_of: int, n: int = 600) -> None:
    """A jido-style export whose ages straddle the 30-day boundary: one record a second around it."""
    write_jsonl(
        path,
        [
            {
                "id": f"m{k}",
                "namespace": f"agents/{k % 3}",
                "class": "episodic",
                "kind": "note",
                "text": f"note {k}",
                "tags": ["persona:alice"] if k % 2 else [],
                "source": "jido",
                "observed_at": as_of - 30 * DAY + (k - n // 2) * 1000,
                "version": 1,
                "metadata": {"agent": "a"},
            }
            for k in range(n)
        ],
    )


def test_tiers_at_the_30_day_boundary_reconcile_at_parity_right_after_and_minutes_later(tmp_path):
    """The tier is a function of (record, policy, as-of): migrate records its as-of (the run's start by
    default) in the checkpoint and each record's provenance; reconcile classifies the export at the
    as-of the target recorded, so a reconcile told it runs ten minutes or a year later (an explicit
    later --as-of: records move across the 30-day line meanwhile) still says parity."""
    _boundary_export(tmp_path / "export.jsonl", int(time.time() * 1000))  # now: the migration's as-of is its start
    src, dst = f"jsonl:{tmp_path / 'export.jsonl'}", f"sqlite:{tmp_path / 'mos.db'}"
    r = cli("migrate", "--from", src, "--to", dst, "--report", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    as_of = json.loads((tmp_path / "m.json").read_text())["as_of"]
    store = MemoryOSStore(tmp_path / "mos.db")
    recs = list(store.scan())
    assert {rec.metadata["migration"]["as_of"] for rec in recs} == {as_of}
    assert [tuple(x) for x in store._conn().execute("SELECT as_of FROM migration_checkpoints")] == [(as_of,)]
    longs = sum(rec.tier == "long" for rec in recs)
    assert longs == sum(rec.observed_at < as_of - 30 * DAY for rec in recs) and 0 < longs < len(recs)
    later = as_of + 10 * 60_000
    assert sum(rec.observed_at < later - 30 * DAY for rec in recs) > longs  # ten minutes on, more are old
    for extra in ([], ["--as-of", str(later)], ["--as-of", str(as_of + 365 * DAY)]):
        rc = cli("reconcile", "--source", src, "--target", dst, *extra)
        assert rc.returncode == 0 and "parity: yes" in rc.stdout and "mismatched 0" in rc.stdout, (
            extra,
            rc.stdout + rc.stderr,
        )
    # the same export migrated again at the same as-of: the same stores, row for row, byte for byte
    iso = __import__("datetime").datetime.fromtimestamp(as_of / 1000, __import__("datetime").UTC).isoformat()
    r2 = cli("migrate", "--from", src, "--to", f"sqlite:{tmp_path / 'again.db'}", "--as-of", iso)
    assert r2.returncode == 0, r2.stderr
    assert _stored_rows(tmp_path / "again.db") == _stored_rows(tmp_path / "mos.db")
    both = cli(
        "reconcile", "--source", dst, "--target", f"sqlite:{tmp_path / 'again.db'}", "--report", str(tmp_path / "rc")
    )
    assert both.returncode == 0, both.stdout
    report = json.loads((tmp_path / "rc" / "reconcile.json").read_text())["report"]
    for ns in report["per_namespace"].values():
        for t in ns["tiers"].values():
            assert t["source_checksum"] == t["target_checksum"] and t["source_count"] == t["target_count"]
    # a resume keeps the as-of the run began with; a different explicit one is refused
    other = cli("migrate", "--from", src, "--to", dst, "--as-of", str(as_of + 1))
    assert other.returncode == 2 and "--restart" in other.stderr and "Traceback" not in other.stderr


def test_migrate_mirror_and_repair_build_the_same_memoryos_rows(tmp_path):
    """One builder: the same legacy records written by `cutover migrate`, by the mirror worker and by
    `cutover reconcile --repair` (into an empty MemoryOS store) are the same stored rows, byte for
    byte: the policy's tier, metadata.mem_os in full, the provenance. A plain reconcile then says
    parity on each (tiers compared), and a second repair copies nothing."""
    from cutover.gateway.outbox import MirrorWorker, Outbox

    as_of = NOW - DAY  # a day ago: a record 30 days old then (mid) is past the boundary now (long)
    legacy = LegacyStore(tmp_path / "legacy.db")
    recs = [
        Record(id="plain", namespace="agents/a", text="plain note", observed_at=as_of - DAY),
        Record(id="boundary", namespace="agents/a", text="at the line", observed_at=as_of - 30 * DAY + 3_600_000),
        Record(id="old", namespace="agents/a", text="old", observed_at=as_of - 45 * DAY, tags=["persona:bob"]),
        Record(id="sem", namespace="agents/b", class_="semantic", text="fact", content={"k": [1, "é"]}),
        Record(id="exp", namespace="agents/b", text="soon", expires_at=as_of + 60_000, source="s", kind="todo"),
        Record(id="kept", namespace="agents/b", text="x", metadata={"mem_os": {"tier": "long", "heat": 2.5}}),
        Record(id="bad", namespace="agents/b", text="y", metadata={"mem_os": {"tier": "bogus"}, "z": 1}),
        Record(id="v3", namespace="agents/c", text="third", version=3, tags=["short_term", "b", "a"]),
    ]
    legacy.put_many(recs)
    ls = f"sqlite:{tmp_path / 'legacy.db'}"
    assert (
        cli("migrate", "--from", ls, "--to", f"sqlite:{tmp_path / 'migrated.db'}", "--as-of", str(as_of)).returncode
        == 0
    )
    mirrored = MemoryOSStore(tmp_path / "mirrored.db")
    box = Outbox(store=legacy)
    for rec in recs:
        box.enqueue("legacy", "memoryos", rec.namespace, rec.id)
    MirrorWorker([box], {"legacy": legacy, "memoryos": mirrored}, as_of=lambda e: as_of).drain_once()
    assert box.depth() == {}
    fix = cli(
        "reconcile", "--source", ls, "--target", f"sqlite:{tmp_path / 'repaired.db'}", "--repair", "--as-of", str(as_of)
    )
    assert fix.returncode == 0 and "8 copied" in fix.stdout and "parity: yes" in fix.stdout, fix.stdout + fix.stderr
    rows = _stored_rows(tmp_path / "migrated.db")
    assert len(rows) == len(recs)
    assert _stored_rows(tmp_path / "mirrored.db") == rows
    assert _stored_rows(tmp_path / "repaired.db") == rows
    repaired = MemoryOSStore(tmp_path / "repaired.db")
    tiers = {r.id: r.tier for r in repaired.scan()}
    assert tiers == {
        "plain": "mid",
        "boundary": "mid",
        "old": "long",
        "sem": "long",
        "exp": "short",
        "kept": "long",
        "bad": "mid",
        "v3": "short",
    }
    for rec in repaired.scan():
        mo, mig = rec.metadata["mem_os"], rec.metadata["migration"]
        assert mo["chain_id"] and mo["consolidation_version"] == 1 and "promotion_score" in mo
        assert mig["as_of"] == as_of and mig["policy"] == "default" and mig["legacy_namespace"] == rec.namespace
    assert repaired.get("agents/a", "old").metadata["mem_os"]["persona_keys"] == ["bob"]
    assert repaired.get("agents/b", "kept").metadata["mem_os"]["heat"] == 2.5
    for name in ("migrated", "mirrored", "repaired"):  # plain reconciles, today: tiers compared
        rc = cli("reconcile", "--source", ls, "--target", f"sqlite:{tmp_path / name}.db")
        assert rc.returncode == 0 and "parity: yes" in rc.stdout, (name, rc.stdout + rc.stderr)
    again = cli("reconcile", "--source", ls, "--target", f"sqlite:{tmp_path / 'mirrored.db'}", "--repair")
    assert again.returncode == 0 and "repair: 0 copied, 0 stale replaced" in again.stdout, again.stdout


def test_repair_fixes_a_wrong_tier_and_then_has_nothing_left_to_do(tmp_path):
    """A record copied as it was (tier short by the store's default, no chain id, no provenance) is
    stale: repair rebuilds it by the policy, a plain reconcile then says parity, a second repair copies nothing."""
    legacy = LegacyStore(tmp_path / "l.db")
    legacy.put_many([Record(id=f"r{i}", namespace="n", text=f"t{i}", class_="semantic") for i in range(20)])
    mos = MemoryOSStore(tmp_path / "m.db")
    mos.put_many([legacy.get("n", f"r{i}") for i in range(20)])  # as a copy without the builder did
    assert {r.tier for r in mos.scan()} == {"short"}
    src, dst = f"sqlite:{tmp_path / 'l.db'}", f"sqlite:{tmp_path / 'm.db'}"
    check = cli("reconcile", "--source", src, "--target", dst)
    assert check.returncode == 1 and "mismatched 20" in check.stdout, check.stdout
    fix = cli("reconcile", "--source", src, "--target", dst, "--repair")
    assert fix.returncode == 0 and "0 copied, 20 stale replaced" in fix.stdout, fix.stdout
    assert {r.tier for r in mos.scan()} == {"long"}
    assert cli("reconcile", "--source", src, "--target", dst).returncode == 0
    again = cli("reconcile", "--source", src, "--target", dst, "--repair")
    assert again.returncode == 0 and "0 copied, 0 stale replaced" in again.stdout


def test_reconcile_reads_an_export_by_the_migrations_rules(tmp_path):
    """Duplicate ids (the highest version kept, the first of equal ones, as migrate keeps them) and
    the lines migrate quarantines (counted apart, not missing) reconcile at parity, with no traceback."""
    lines = [
        {"id": "dup", "namespace": "n", "text": "second version", "version": 2},
        {"id": "dup", "namespace": "n", "text": "first version", "version": 1},
        {"id": "tie", "namespace": "n", "text": "kept", "version": 1},
        {"id": "tie", "namespace": "n", "text": "not kept", "version": 1},
        {"id": "up", "namespace": "m", "text": "v1", "version": 1},
        {"id": "up", "namespace": "m", "text": "v3", "version": 3},
        {"id": "meta", "namespace": "n", "metadata": [1]},
        {"id": "when", "namespace": "n", "observed_at": "2024"},
        {"id": "kind", "namespace": "n", "kind": ["x"]},
        {"id": "src", "namespace": "n", "source": {"a": 1}},
        {"id": "cls", "namespace": "n", "class": ["semantic"]},
        {"id": "null-observed", "namespace": "n", "text": "no time", "observed_at": None},
        {"id": "bad-tier", "namespace": "n", "text": "z", "metadata": {"mem_os": {"tier": "huge"}}},
        "{not json",
        "[1, 2]",
        "",
        {"id": "ok", "namespace": "n", "text": "fine", "observed_at": NOW - 30 * DAY},
    ]
    write_jsonl(tmp_path / "e.jsonl", lines)
    src, dst = f"jsonl:{tmp_path / 'e.jsonl'}", f"sqlite:{tmp_path / 'm.db'}"
    r = cli("migrate", "--from", src, "--to", dst, "--report", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["quarantined"] == 7
    store = MemoryOSStore(tmp_path / "m.db")
    assert store.get("n", "dup").text == "second version" and store.get("n", "tie").text == "kept"
    assert store.get("m", "up").text == "v3" and store.get("n", "bad-tier").tier == "mid"
    rc = cli("reconcile", "--source", src, "--target", dst, "--report", str(tmp_path / "rc"))
    assert rc.returncode == 0 and "parity: yes" in rc.stdout, rc.stdout + rc.stderr
    assert (
        "Traceback" not in rc.stderr and "quarantined source 7" in rc.stdout and "duplicate ids source 3" in rc.stdout
    )
    rep = json.loads((tmp_path / "rc" / "reconcile.json").read_text())["report"]
    assert rep["totals"] == {"missing_in_target": 0, "missing_in_source": 0, "mismatched": 0}
    assert rep["quarantined"]["source"] == 7 and rep["superseded"]["source"] == 3
    # the export against itself, and against a JSONL migration of it (which keeps every line)
    assert cli("migrate", "--from", src, "--to", f"jsonl:{tmp_path / 'out.jsonl'}").returncode == 0
    rj = cli("reconcile", "--source", src, "--target", f"jsonl:{tmp_path / 'out.jsonl'}")
    assert rj.returncode == 0 and "parity: yes" in rj.stdout, rj.stdout + rj.stderr
