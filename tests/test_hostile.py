"""Issue 21: hostile input never becomes a 5xx, a crash, a silent drop or a leak.

Regression tests per defect (the real gateway process where it matters) and property-based tests
(hypothesis, fixed seed, bounded examples) of the API, the webhook, the plan loader and the
migration's record reader.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from cutover.plan.errors import CutoverError
from cutover.plan.model import load_plan
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import ID_PATTERN, NAMESPACE_PATTERN, Record
from cutover.store.remote import HttpStore

from . import hostile
from .conftest import ROOT
from .gatewayproc import GatewayProcess, project_copy

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
CLI = [sys.executable, "-m", "cutover.cli"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    data = tmp / "data"
    g = GatewayProcess(project_copy(tmp), data, "shadow").start()
    yield g
    g.stop()


def tracebacks(g: GatewayProcess) -> int:
    return Path(g.log.name).read_text(errors="replace").count("Traceback")


# -- the public API --------------------------------------------------------------------------------
@pytest.mark.parametrize("name, method, path, kw, status", hostile.REQUESTS, ids=[c[0] for c in hostile.REQUESTS])
def test_hostile_request_gets_a_clean_4xx(gw, name, method, path, kw, status):
    headers = {"X-Agent-Id": "hostile", **kw.pop("headers", {})} if "headers" in kw else {"X-Agent-Id": "hostile"}
    kw = {**kw, "headers": headers}
    before = tracebacks(gw)
    r = httpx.request(method, gw.url + path, timeout=30, **kw)
    assert r.status_code == status, r.text[:300]
    assert r.json()["error"]
    assert tracebacks(gw) == before


def test_named_fields_in_the_messages(gw):
    c = gw.client()
    cases = {
        "since": {"namespace": "a", "since": 2**64},
        "tags_any": None,
        "metadata.mem_os.heat": None,
    }
    assert "since" in c.post("/v1/recall", json=cases["since"]).json()["error"]
    r = c.post("/v1/recall", content=hostile.raw('{"namespace":"a","tags_any":["\\ud800"]}'))
    assert "tags_any" in r.json()["error"]
    r = c.post("/v1/memories", json=hostile.body(metadata={"mem_os": {"heat": "hot"}}))
    assert "metadata.mem_os.heat" in r.json()["error"]
    r = c.post(
        "/v1/memories", content=b'{"id":"h1","namespace":"a","content":{"deep":' + b"[" * 100 + b"]" * 100 + b"}}"
    )
    assert "content.deep" in r.json()["error"] and "nested deeper than 32" in r.json()["error"]
    r = c.post("/v1/memories", json=hostile.body(version=2**63))
    assert "version" in r.json()["error"]


def test_an_encoded_slash_cannot_reach_another_namespace(gw):
    c = gw.client()
    assert c.post("/v1/memories", json={"id": "x", "namespace": "slash/b", "text": "t"}).status_code == 200
    assert c.get("/v1/memories/slash/b/x").status_code == 200
    assert c.get("/v1/memories/slash/b%2Fx").status_code == 400
    assert c.delete("/v1/memories/slash/b%2Fx").status_code == 400
    assert c.get("/v1/memories/slash/b/x").status_code == 200  # still there


def test_acknowledged_writes_are_stored_and_mirrored_intact(gw):
    """Every id the API accepts reaches both stores with the same key (no NUL cut, no dropped mirror)."""
    c = gw.client()
    ids = ["a.b", "x:y@z", "k+v=w~1", "_u-1", "A" * 256]
    for rid in ids:
        r = c.post("/v1/memories", json={"id": rid, "namespace": "intact/n.s/x-1", "text": f"t {rid}"})
        assert r.status_code == 200, r.text
    gw.wait_drained()
    for cls in (LegacyStore, MemoryOSStore):
        store = cls(gw.data / f"{cls.name if cls is MemoryOSStore else 'legacy'}.db")
        assert {r.id for r in store.scan("intact/n.s/x-1")} == set(ids)
    assert gw.status()["outbox"]["dead_letters"] == 0


def test_x_group_is_bounded(gw):
    c = gw.client()
    r = c.post("/v1/recall", json={"namespace": "a"}, headers={"X-Group": "g" * 65})
    assert r.status_code == 400 and "X-Group" in r.json()["error"]
    assert c.post("/v1/recall", json={"namespace": "a"}, headers={"X-Group": "g" * 64}).status_code == 200


def test_a_large_header_is_refused_and_the_server_goes_on(gw):
    r = httpx.get(gw.url + "/healthz", headers={"X-Big": "x" * 20_000}, timeout=30)
    assert r.status_code == 431 and "limit of 16384 bytes" in r.json()["error"]
    assert httpx.get(gw.url + "/healthz", headers={"X-Ok": "x" * 8000}, timeout=10).status_code == 200


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_key = st.text(max_size=12) | st.sampled_from(["a", "../x", "a/b", "a\x00b", "a?x", "a#b", ".", "ok-1", "ns/x"])
_record = st.fixed_dictionaries(
    {"id": _key, "namespace": _key},
    optional={
        "text": st.text(max_size=30),
        "tags": st.lists(st.text(max_size=5), max_size=3) | _json,
        "content": _json,
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "mem_os": st.dictionaries(
                    st.sampled_from(["tier", "heat", "last_accessed_at", "chain_id"]), _json, max_size=3
                )
            },
        )
        | _json,
        "version": st.integers(min_value=-5, max_value=2**65),
        "observed_at": st.integers(min_value=-5, max_value=2**65) | _json,
        "class": st.sampled_from(["episodic", "semantic", "x"]),
        "kind": _json,
        "source": _json,
    },
)
_recall = st.fixed_dictionaries(
    {"namespace": _key},
    optional={
        "query": st.text(max_size=20),
        "tags_any": st.lists(st.text(max_size=5), max_size=3) | _json,
        "tags_all": st.lists(st.text(max_size=5), max_size=3),
        "text_contains": st.text(max_size=10) | _json,
        "since": st.integers(min_value=-(2**70), max_value=2**70),
        "until": _json,
        "limit": _json,
    },
)
_surrogate_text = st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)


def _dumps(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")


@seed(21)
@SETTINGS
@given(data=st.data())
def test_property_the_api_never_answers_5xx(gw, data):
    c = gw.client()
    before = tracebacks(gw)
    kind = data.draw(st.sampled_from(["remember", "recall", "get", "delete"]))
    if kind == "remember":
        obj = data.draw(_record)
        if data.draw(st.booleans()):
            obj["text"] = data.draw(_surrogate_text)
        r = c.post("/v1/memories", content=_dumps(obj))
        if r.status_code == 200:  # acknowledged: readable back under the same key, intact
            got = c.get(f"/v1/memories/{obj['namespace']}/{obj['id']}")
            assert got.status_code == 200 and got.json()["record"]["id"] == obj["id"]
    elif kind == "recall":
        r = c.post("/v1/recall", content=_dumps(data.draw(_recall)))
    else:
        ns = data.draw(st.sampled_from(["a", "slash/b", "x%2Fy", "%00", "..", "a/%ED%A0%80", "a/b?c"]))
        rid = data.draw(st.sampled_from(["x", "%2F", "..", "a%00", "%FF", "ok"]))
        r = c.request("GET" if kind == "get" else "DELETE", f"/v1/memories/{ns}/{rid}")
    assert r.status_code < 500, r.text[:300]
    assert tracebacks(gw) == before


def test_http_store_escapes_record_paths():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"record": None})

    store = HttpStore("remote", "http://127.0.0.1:9")
    store._client = httpx.Client(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handler))
    store.get("ns/a", "a?x")
    store.delete("ns/a", "b#c")
    store.get("ns", "x/../../other/y")
    assert seen == ["/v1/memories/ns/a/a%3Fx", "/v1/memories/ns/a/b%23c", "/v1/memories/ns/x%2F..%2F..%2Fother%2Fy"]


def test_key_patterns_refuse_what_would_be_cut_or_moved():
    import re

    for bad in ["", ".", "..", "../x", "a/b", "a\x00b", "a?x", "a#x", "a b", "-x", "é"]:
        assert not re.match(ID_PATTERN, bad)
    for bad in ["", "/a", "a/", "a//b", "a/../b", "a\x00"]:
        assert not re.match(NAMESPACE_PATTERN, bad)
    assert re.match(NAMESPACE_PATTERN, "agents/a") and re.match(ID_PATTERN, "r1")
    with pytest.raises(ValueError):
        Record.model_validate({"id": "x", "namespace": "a", "content": float("inf")})


# -- the flag file ---------------------------------------------------------------------------------
def _wait(cond, what: str, timeout: float = 30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def _replace(path: Path, data: bytes) -> None:
    """As an operator (or `cutover flags`) should: a new file moved into place, never a half-written one."""
    tmp = path.with_suffix(".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_a_bad_flag_file_keeps_the_last_good_flag_set(tmp_path):
    g = GatewayProcess(project_copy(tmp_path), tmp_path / "data", "canary").start()
    try:
        flags = g.data / "flags.json"
        good = flags.read_bytes()
        c = g.client(group="internal")
        assert c.post("/v1/recall", json={"namespace": "a"}).json()["read_path"] == "memoryos"
        cases = hostile.FLAG_FILES + hostile.bad_flag_variants(json.loads(good))
        for i, (name, text) in enumerate(cases, 1):
            _replace(flags, text)
            _wait(lambda i=i: g.status()["flags"]["config_errors"] >= i, f"{name} counted")
            s = g.status()
            assert not s["flags"]["config_ok"] and s["flags"]["config_error"], name
            r = c.post("/v1/recall", json={"namespace": "a"})
            assert r.status_code == 200 and r.json()["read_path"] == "memoryos", name  # the last good set
            assert c.get("/healthz").status_code == 200
            _replace(flags, good)
            _wait(lambda: g.status()["flags"]["config_ok"], f"good again after {name}")
        metrics = c.get("/metrics").text
        errors = g.status()["flags"]["config_errors"]
        assert errors == len(cases), errors
        assert f'cutover_flag_config_errors_total{{reason="invalid"}} {float(errors)}' in metrics
        log = Path(g.log.name).read_text()
        assert "Traceback" not in log and log.count("refused") <= 2  # rate-limited: once per 30 s
    finally:
        g.stop()


@pytest.mark.parametrize("text", [b"", b"{}", b'{"flags": {}}', b"[" * 1000 + b"]" * 1000])
def test_a_gateway_started_on_a_bad_flag_file_refuses_to_start(tmp_path, text):
    flags = tmp_path / "flags.json"
    flags.write_bytes(text)
    args = ["serve", "--phase", "canary", "--data-dir", str(tmp_path / "d"), "--port", "1", "--flags-file", str(flags)]
    r = subprocess.run(
        CLI + args + ["--project-dir", str(project_copy(tmp_path))], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "flag file refused" in r.stderr and "Traceback" not in r.stderr, r.stderr


# -- auth, binding and file modes ------------------------------------------------------------------
def _serve(tmp_path: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    args = CLI + ["serve", "--phase", "canary", "--data-dir", str(tmp_path / "d"), "--port", "1"]
    args += ["--project-dir", str(project_copy(tmp_path)), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_a_non_loopback_host_without_auth_is_refused(tmp_path):
    r = _serve(tmp_path, "--host", "0.0.0.0")
    assert r.returncode == 2 and "--insecure-no-auth" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("mode, token, words", [(0o644, "t" * 40, "chmod 600"), (0o600, "short", "too short")])
def test_loose_or_weak_token_files_are_refused(tmp_path, mode, token, words):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(json.dumps({token: ["agents"]}))
    tokens.chmod(mode)
    r = _serve(tmp_path, "--auth", f"tokens:{tokens}")
    assert r.returncode == 2 and words in r.stderr, r.stderr
    admin = tmp_path / "admin-token"
    admin.write_text(token)
    admin.chmod(mode)
    r = _serve(tmp_path, env={"CUTOVER_ADMIN_TOKEN": "", "CUTOVER_ADMIN_TOKEN_FILE": str(admin)})
    assert r.returncode == 2 and words in r.stderr, r.stderr


def test_bearer_tokens_limit_callers_to_their_namespaces(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    a, b = "a" * 40, "b" * 40
    tokens.write_text(json.dumps({a: ["agents/a"], b: ["*"]}))
    tokens.chmod(0o600)
    g = GatewayProcess(project_copy(tmp_path), tmp_path / "data", "canary")
    g.start(None, "--auth", f"tokens:{tokens}")
    try:
        rec = {"id": "x", "namespace": "agents/a", "text": "t"}
        assert httpx.post(g.url + "/v1/memories", json=rec, headers={"X-Agent-Id": "1"}).status_code == 401
        h = {"X-Agent-Id": "1", "Authorization": f"Bearer {a}"}
        assert httpx.post(g.url + "/v1/memories", json=rec, headers=h).status_code == 200
        g.wait_drained()  # a treated agent reads MemoryOS, which the mirror fills after the write
        assert httpx.get(g.url + "/v1/memories/agents/a/x", headers=h).status_code == 200
        other = {**rec, "namespace": "agents/ab"}
        assert httpx.post(g.url + "/v1/memories", json=other, headers=h).status_code == 403
        assert httpx.post(g.url + "/v1/recall", json={"namespace": "corp"}, headers=h).status_code == 403
        wrong = {**h, "Authorization": "Bearer " + "c" * 40}
        assert httpx.get(g.url + "/v1/memories/agents/a/x", headers=wrong).status_code == 401
        hb = {"X-Agent-Id": "1", "Authorization": f"Bearer {b}"}
        assert httpx.post(g.url + "/v1/memories", json=other, headers=hb).status_code == 200
        assert httpx.get(g.url + "/healthz").status_code == 200
    finally:
        g.stop()


def test_files_are_private_from_creation(tmp_path):
    g = GatewayProcess(project_copy(tmp_path), tmp_path / "data", "canary")
    g.start()
    try:
        mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
        assert mode(g.data) == 0o700
        for f in g.data.iterdir():
            if f.is_file():
                assert mode(f) & 0o077 == 0, (f.name, oct(mode(f)))
    finally:
        g.stop()


def test_the_generated_admin_token_is_private_from_creation(tmp_path, monkeypatch):
    from cutover.gateway.app import admin_token

    monkeypatch.delenv("CUTOVER_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CUTOVER_ADMIN_TOKEN_FILE", raising=False)
    created: list[int] = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *a, **kw):
        if str(path).endswith("admin-token") and flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    token, _where = admin_token(tmp_path)
    assert created == [0o600] and len(token) >= 32
    assert stat.S_IMODE((tmp_path / "admin-token").stat().st_mode) == 0o600


# -- the webhook -----------------------------------------------------------------------------------
@pytest.fixture
def controller(tmp_path):
    from starlette.testclient import TestClient

    from cutover.flags.backend import FlagFile
    from cutover.ops.controller import Controller
    from cutover.ops.webhook import controller_app

    plan = load_plan(ROOT / "rollout.yaml")
    flags = tmp_path / "flags.json"
    from cutover.flags.document import dumps, render_flags

    flags.write_text(dumps(render_flags(plan, "canary", "staging")))
    ctrl = Controller(plan, "staging", FlagFile(flags), "s3cret", tmp_path / "rollbacks.jsonl")
    return TestClient(controller_app(ctrl), raise_server_exceptions=False)


@pytest.mark.parametrize("name, payload, status", hostile.WEBHOOKS, ids=[c[0] for c in hostile.WEBHOOKS])
def test_hostile_webhook_gets_a_clean_4xx(controller, name, payload, status):
    r = controller.post("/alertmanager", content=payload, headers={"X-Cutover-Secret": "s3cret"})
    assert r.status_code == status and r.json()["error"], r.text[:200]


@seed(21)
@SETTINGS
@given(
    payload=st.one_of(
        _json,
        st.fixed_dictionaries(
            {
                "alerts": st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "status": _json | st.just("firing"),
                            "labels": st.dictionaries(
                                st.sampled_from(["action", "severity", "alertname", "rollback_level"]),
                                _json | st.sampled_from(["rollback", "critical", "immediate", "x"]),
                            ),
                        },
                    )
                    | _json,
                    max_size=3,
                )
                | _json
            }
        ),
    )
)
def test_property_the_webhook_never_answers_5xx(controller, payload):
    r = controller.post("/alertmanager", content=_dumps(payload), headers={"X-Cutover-Secret": "s3cret"})
    assert r.status_code < 500, r.text[:300]


# -- plans -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, text", hostile.plan_cases(), ids=[c[0] for c in hostile.plan_cases()])
def test_hostile_plan_exits_2_with_file_and_line(tmp_path, name, text):
    p = tmp_path / "rollout.yaml"
    p.write_bytes(text)
    r = subprocess.run(CLI + ["plan", "validate", str(p)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out and "fix:" in out, out
    assert f"{p}:" in out, out  # file:line
    line = hostile.plan_expected_lines().get(name)
    if line:
        assert f"{p}:{line}:" in out, out


@seed(21)
@SETTINGS
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_property_the_plan_loader_raises_only_plan_errors(tmp_path, text):
    good = (ROOT / "rollout.yaml").read_text()
    p = tmp_path / "rollout.yaml"
    for doc in (text, good + "\n" + text, good.replace("percentage: 5", "percentage: " + text[:20], 1)):
        p.write_bytes(doc.encode("utf-8", "surrogatepass"))
        try:
            load_plan(p)
        except CutoverError as exc:
            assert exc.file and exc.line, str(exc)


# -- the migration's record reader ---------------------------------------------------------------
def test_odd_records_are_quarantined_and_the_run_goes_on(tmp_path):
    from cutover.migration.migrate import migrate
    from cutover.migration.options import Options

    src = tmp_path / "export.jsonl"
    lines = [json.dumps({"id": f"g{i}", "namespace": "mig/a", "text": "good"}) for i in range(3)]
    for _, rec in hostile.migration_records():
        lines.append(json.dumps(rec))
        lines.append(json.dumps({"id": f"after{len(lines)}", "namespace": "mig/a", "text": "good"}))
    src.write_text("\n".join(lines) + "\n")
    dst = tmp_path / "memoryos.db"
    from cutover.migration.tiering import load_policy

    opts = dict(source=f"jsonl:{src}", target=f"sqlite:{dst}", policy=load_policy(), workers=2, chunk=4)
    counts = migrate(Options(**opts))
    n_bad = len(hostile.migration_records())
    assert counts["quarantined"] == n_bad and counts["migrated"] == len(lines) - n_bad, counts
    quarantine = [json.loads(x) for x in (tmp_path / "memoryos.db.quarantine.jsonl").read_text().splitlines()]
    assert len(quarantine) == n_bad and all(q["reason"] for q in quarantine)
    again = migrate(Options(**opts))  # a re-run does not stop either
    assert again["quarantined"] in (0, n_bad)


@seed(21)
@settings(max_examples=300, deadline=None)
@given(obj=_record)
def test_property_a_record_answers_on_the_wire_what_its_dump_gives(obj):
    """The API answers `Record.wire()` (built by hand, for speed): for every record that validates it
    is `dump()`, key for key and in the same order."""
    from pydantic import ValidationError

    try:
        rec = Record.model_validate(obj)
    except ValidationError:
        return
    assert rec.wire() == rec.dump() and list(rec.wire()) == list(rec.dump())


@seed(21)
@SETTINGS
@given(obj=_record | _json)
def test_property_the_record_reader_quarantines_never_crashes(obj):
    import sqlite3

    from cutover.migration import workers as m
    from cutover.migration.tiering import load_policy
    from cutover.store.rows import upsert_sql
    from cutover.store.schema import SCHEMA, register_functions

    if "spec" not in m._worker:
        spec = m.ChunkSpec("jsonl:x", load_policy(), 1, None, None, "quarantine", True)
        m._init_worker(spec)
    line = _dumps(obj) + b"\n"
    chunk = m.prepare_jsonl_chunk(0, 0, line)
    assert chunk.counts.migrated + chunk.counts.quarantined + chunk.counts.skipped_other_shards <= 1
    if chunk.out:  # prepared: the row must go into SQLite as it is
        db = sqlite3.connect(":memory:")
        register_functions(db)  # the schema's SQL functions (the full-text index's terms)
        db.executescript(SCHEMA)
        row = chunk.out[0]
        assert isinstance(row, tuple), type(row)  # the spec asks for row tuples (a SQLite target)
        db.execute(upsert_sql(), row)
        assert db.execute("SELECT id FROM records").fetchone()[0] == obj["id"]


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="Linux /proc")
def test_kill_9_of_migrate_leaves_no_worker_running(tmp_path):
    src = tmp_path / "export.jsonl"
    line = '{"id":"r%d","namespace":"mig/%d","text":"some text to prepare for the target store"}\n'
    src.write_text("".join(line % (i, i % 50) for i in range(400_000)))
    args = CLI + ["migrate", "--from", f"jsonl:{src}", "--to", f"sqlite:{tmp_path / 'm.db'}", "--workers", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers = _wait(lambda: len(_children(proc.pid)) >= 2 and _children(proc.pid), "workers started", 60)
    finally:
        proc.kill()
        proc.wait(10)
    _wait(lambda: not any(Path(f"/proc/{w}").exists() and "zombie" not in _state(w) for w in workers), "workers gone")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_trusted_proxy_mode_takes_the_namespaces_from_the_proxy_only():
    from cutover.gateway.auth import Auth, AuthError, load_auth

    auth = load_auth("trusted-proxy:10.0.0.5/32,127.0.0.0/8")
    assert auth.prefixes({"x-cutover-namespaces": "agents/a, corp"}, "127.0.0.1") == ("agents/a", "corp")
    for headers, client, status in [
        ({"x-cutover-namespaces": "*"}, "10.0.0.6", 403),  # not from the proxy
        ({}, "10.0.0.5", 403),  # the proxy granted nothing
        ({"x-cutover-namespaces": "*"}, None, 403),
    ]:
        with pytest.raises(AuthError) as exc:
            auth.prefixes(headers, client)
        assert exc.value.status == status
    Auth.authorize(("corp",), "corp/1")
    with pytest.raises(AuthError):
        Auth.authorize(("corp",), "corporate")
    for bad in ("trusted-proxy:", "trusted-proxy:nonsense", "tokens:", "basic"):
        with pytest.raises(CutoverError):
            load_auth(bad)
