"""Hostile input of the kinds issue 21 lists: requests, flag files, webhooks, plans, migration records.

Each corpus is a list of (name, case). The tests assert on each case; `python -m tests.hostile` runs
them all against the real gateway, controller, plan loader and migration and prints the counts per
kind (cases, 5xx, tracebacks, silent drops).
"""

from __future__ import annotations

import json

from .conftest import ROOT

DEEP = 1000
GOOD = {"id": "h1", "namespace": "hostile/a", "text": "hostile input"}


def body(**changes) -> dict:
    return {**GOOD, **changes}


def raw(text: str) -> bytes:
    """JSON text as bytes, lone surrogates and all (json.dumps escapes them as \\udXXX)."""
    return text.encode("utf-8", "surrogatepass")


# (name, method, path, kwargs for httpx, the expected status class or exact status)
REQUESTS: list[tuple[str, str, str, dict, int]] = [
    ("since beyond 64 bits", "POST", "/v1/recall", {"json": {"namespace": "hostile/a", "since": 2**64}}, 422),
    ("until beyond 64 bits", "POST", "/v1/recall", {"json": {"namespace": "hostile/a", "until": -(2**70)}}, 422),
    ("version beyond 64 bits", "POST", "/v1/memories", {"json": body(version=2**63)}, 422),
    ("observed_at beyond 64 bits", "POST", "/v1/memories", {"json": body(observed_at=10**30)}, 422),
    (
        "5000-digit integer",
        "POST",
        "/v1/memories",
        {"content": b'{"id":"h1","namespace":"a","version":' + b"9" * 5000 + b"}"},
        422,
    ),
    ("content integer beyond 64 bits", "POST", "/v1/memories", {"json": body(content={"n": 2**64})}, 422),
    ("top-level array 1000 deep", "POST", "/v1/memories", {"content": b"[" * DEEP + b"]" * DEEP}, 400),
    ("object 1000 deep", "POST", "/v1/memories", {"content": b'{"a":' * DEEP + b"1" + b"}" * DEEP}, 400),
    (
        "content nested 255 deep",
        "POST",
        "/v1/memories",
        {"content": raw(json.dumps(body()).rstrip("}") + ',"content":' + "[" * 255 + "]" * 255 + "}")},
        422,
    ),
    (
        "metadata nested 100 deep",
        "POST",
        "/v1/memories",
        {"json": body(metadata={"x": [[[[[[[[[[[[]]]]]]]]]]]] * 1, "y": json.loads("[" * 100 + "]" * 100)})},
        422,
    ),
    (
        "lone surrogate in tags",
        "POST",
        "/v1/memories",
        {"content": raw('{"id":"h1","namespace":"a","tags":["\\ud800"]}')},
        422,
    ),
    (
        "lone surrogate in text",
        "POST",
        "/v1/memories",
        {"content": raw('{"id":"h1","namespace":"a","text":"x\\udfff"}')},
        422,
    ),
    (
        "lone surrogate in content key",
        "POST",
        "/v1/memories",
        {"content": raw('{"id":"h1","namespace":"a","content":{"\\ud800":1}}')},
        422,
    ),
    (
        "lone surrogate in tags_any",
        "POST",
        "/v1/recall",
        {"content": raw('{"namespace":"a","tags_any":["\\ud800"]}')},
        422,
    ),
    (
        "lone surrogate in tags_all",
        "POST",
        "/v1/recall",
        {"content": raw('{"namespace":"a","tags_all":["\\udbff"]}')},
        422,
    ),
    (
        "lone surrogate in text_contains",
        "POST",
        "/v1/recall",
        {"content": raw('{"namespace":"a","text_contains":"\\ud800"}')},
        422,
    ),
    ("lone surrogate in query", "POST", "/v1/recall", {"content": raw('{"namespace":"a","query":"\\ud800 x"}')}, 422),
    (
        "mem_os.heat a string",
        "POST",
        "/v1/memories",
        {"json": body(metadata={"mem_os": {"tier": "short", "heat": "hot"}})},
        422,
    ),
    ("mem_os.heat a list", "POST", "/v1/memories", {"json": body(metadata={"mem_os": {"heat": [1]}})}, 422),
    (
        "mem_os.last_accessed_at a list",
        "POST",
        "/v1/memories",
        {"json": body(metadata={"mem_os": {"last_accessed_at": [1]}})},
        422,
    ),
    ("mem_os not an object", "POST", "/v1/memories", {"json": body(metadata={"mem_os": 5})}, 422),
    ("id with NUL", "POST", "/v1/memories", {"json": body(id="a\x00b")}, 422),
    ("namespace with NUL", "POST", "/v1/memories", {"json": body(namespace="a\x00b")}, 422),
    ("id with /", "POST", "/v1/memories", {"json": body(id="b/x")}, 422),
    ("id ../x", "POST", "/v1/memories", {"json": body(id="../x")}, 422),
    ("id ..", "POST", "/v1/memories", {"json": body(id="..")}, 422),
    ("id with ?", "POST", "/v1/memories", {"json": body(id="a?x")}, 422),
    ("id with #", "POST", "/v1/memories", {"json": body(id="a#x")}, 422),
    ("id with space", "POST", "/v1/memories", {"json": body(id="a x")}, 422),
    ("namespace with //", "POST", "/v1/memories", {"json": body(namespace="a//b")}, 422),
    ("namespace trailing /", "POST", "/v1/memories", {"json": body(namespace="a/")}, 422),
    ("recall namespace with NUL", "POST", "/v1/recall", {"json": {"namespace": "a\x00"}}, 422),
    ("GET with encoded /", "GET", "/v1/memories/slash/b%2Fx", {}, 400),
    ("DELETE with encoded /", "DELETE", "/v1/memories/slash/b%2Fx", {}, 400),
    ("GET with encoded NUL", "GET", "/v1/memories/hostile/a/h%00", {}, 400),
    ("GET with dot-dot id", "GET", "/v1/memories/hostile/%2E%2E", {}, 400),
    ("GET with non-ASCII id", "GET", "/v1/memories/hostile/%ED%A0%80", {}, 400),
    ("Infinity", "POST", "/v1/memories", {"content": b'{"id":"h1","namespace":"a","content":Infinity}'}, 422),
    ("NaN", "POST", "/v1/memories", {"content": b'{"id":"h1","namespace":"a","content":{"x":NaN}}'}, 422),
    (
        "-Infinity in heat",
        "POST",
        "/v1/memories",
        {"content": b'{"id":"h1","namespace":"a","metadata":{"mem_os":{"heat":-Infinity}}}'},
        422,
    ),
    ("float overflow 1e999", "POST", "/v1/memories", {"content": b'{"id":"h1","namespace":"a","content":1e999}'}, 422),
    ("16 MiB header", "GET", "/healthz", {"headers": {"X-Big": "x" * (16 * 1024 * 1024)}}, 431),
    (
        "X-Group of 10 000 characters",
        "POST",
        "/v1/recall",
        {"json": {"namespace": "a"}, "headers": {"X-Group": "g" * 10_000}},
        400,
    ),
    ("kind an object", "POST", "/v1/memories", {"json": body(kind={"a": 1})}, 422),
    ("source an object", "POST", "/v1/memories", {"json": body(source={"a": 1})}, 422),
    ("body not UTF-8", "POST", "/v1/memories", {"content": b'{"id":"\xff"}'}, 400),
    ("body a string", "POST", "/v1/memories", {"content": b'"x"'}, 400),
    ("body 5", "POST", "/v1/recall", {"content": b"5"}, 400),
]

# (name, flag file text): each parses or not, none may replace the good flag set
FLAG_FILES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("whitespace", b"  \n"),
    ("not JSON", b"{flags"),
    ("empty object", b"{}"),
    ("no flags", b'{"flags": {}}'),
    ("flags a list", b'{"flags": []}'),
    (
        "kill switch a string",
        b'{"flags": {"memory-kill-switch": {"state": "ENABLED", "variants": {"on": "yes"}, "defaultVariant": "on"}}}',
    ),
    ("array 1000 deep", b"[" * DEEP + b"]" * DEEP),
    ("top-level array", b"[1, 2]"),
]


def bad_flag_variants(good: dict) -> list[tuple[str, bytes]]:
    """Flag sets that parse and look like flag files but have values of the wrong type."""
    out = []
    for key in good["flags"]:
        for value in (1, "", None, {"x": 1}):
            doc = json.loads(json.dumps(good))
            variant = next(iter(doc["flags"][key]["variants"]))
            doc["flags"][key]["variants"][variant] = value
            out.append((f"{key} variant {variant} = {value!r}", json.dumps(doc).encode()))
        doc = json.loads(json.dumps(good))
        doc["flags"][key]["defaultVariant"] = "nope"
        out.append((f"{key} defaultVariant missing", json.dumps(doc).encode()))
    return out


WEBHOOKS: list[tuple[str, bytes, int]] = [
    ("[]", b"[]", 422),
    ("5", b"5", 422),
    ('{"alerts":5}', b'{"alerts":5}', 422),
    ('{"alerts":[5]}', b'{"alerts":[5]}', 422),
    ("labels a list", b'{"alerts":[{"status":"firing","labels":[1]}]}', 422),
    ("label value a number", b'{"alerts":[{"status":"firing","labels":{"action":5}}]}', 422),
    ("status a number", b'{"alerts":[{"status":1}]}', 422),
    ("rollback_level unknown", b'{"alerts":[{"status":"firing","labels":{"rollback_level":"x"}}]}', 422),
    ("nested 1000 deep", b"[" * DEEP + b"]" * DEEP, 400),
    ("object nested 100 deep", b'{"a":' * 100 + b"1" + b"}" * 100, 422),
    ("lone surrogate", raw('{"alerts":[{"status":"\\ud800"}]}'), 422),
    ("not JSON", b"{alerts", 400),
    ("not UTF-8", b'{"alerts":"\xff"}', 400),
    ("NaN", b'{"alerts":NaN}', 422),
    ("8 MiB body", b'{"alerts":[' + b" " * (8 * 1024 * 1024) + b"]}", 413),
]


def plan_cases() -> list[tuple[str, bytes]]:
    good = (ROOT / "rollout.yaml").read_text()
    return [
        ("non-UTF-8 byte", good.encode().replace(b"title", b"ti\xfftle", 1)),
        ("YAML nested 600 deep", b"x: " + b"[" * 600 + b"]" * 600 + b"\n" + good.encode()),
        ("mapping nested 600 deep", good.encode() + b"\n" + b"".join(b"  " * i + b"k:\n" for i in range(600))),
        ("5000-digit integer", good.encode() + b"\nbig: " + b"9" * 5000 + b"\n"),
        ("duplicate key", good.encode() + b"\nversion: 1\n"),
        ("percentage: true", good.replace("percentage: 5", "percentage: true", 1).encode()),
        ("min_duration: .inf", good.replace("min_duration: ", "min_duration: .inf #", 1).encode()),
        ("for: .nan", (good + "abort_triggers:\n  for: .nan\n").encode()),
        ("drift: .nan", (good + "abort_triggers:\n  drift: .nan\n").encode()),
        ("empty file", b""),
        ("NUL byte", good.encode()[:200] + b"\x00" + good.encode()[200:]),
        ("a list", b"- 1\n- 2\n"),
        ("a scalar", b"5\n"),
        ("anchors bomb", b"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\n" + good.encode()),
        ("python tag", b"x: !!python/object:os.system 1\n" + good.encode()),
    ]


def plan_expected_lines() -> dict[str, int]:
    """The line each plan case must report."""
    good = (ROOT / "rollout.yaml").read_text()
    n = len(good.splitlines())
    return {"for: .nan": n + 2, "drift: .nan": n + 2, "duplicate key": n + 2, "5000-digit integer": n + 2}


def migration_records() -> list[tuple[str, object]]:
    """(name, JSON-serializable-or-raw record): each must be quarantined, never abort the run."""
    base = {"id": "m1", "namespace": "mig/a", "text": "x"}
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    return [
        ("mem_os.heat hot", {**base, "metadata": {"mem_os": {"heat": "hot"}}}),
        ("mem_os.heat [1]", {**base, "metadata": {"mem_os": {"heat": [1]}}}),
        ("last_accessed_at [1]", {**base, "metadata": {"mem_os": {"last_accessed_at": [1]}}}),
        ("kind an object", {**base, "kind": {"a": 1}}),
        ("source an object", {**base, "source": {"a": 1}}),
        ("content nested 300 deep", {**base, "content": deep}),
        ("id with NUL", {**base, "id": "a\x00b"}),
        ("id with /", {**base, "id": "a/b"}),
        ("version beyond 64 bits", {**base, "version": 2**64}),
        ("content integer beyond 64 bits", {**base, "content": 2**63}),
        ("tag a number", {**base, "tags": [1]}),
    ]


# -- the closing figures: `python -m tests.hostile` ------------------------------------------------
POOL: list = [
    2**64,
    -(2**63) - 1,
    2**63,
    10**30,
    "hot",
    [1],
    {"a": 1},
    None,
    True,
    "",
    "a\x00b",
    "\ud800",
    "../x",
    "a/b",
    "a?x",
    "a#x",
    1e308,
    -0.0,
    "x" * 300,
]
FIELDS = ["id", "namespace", "version", "observed_at", "expires_at", "kind", "source", "text", "tags", "content"]


def generated_requests(n: int = 300, seed: int = 21) -> list[tuple[str, str, str, dict]]:
    """Fixed-seed mutations of a good record and a good recall: one or two hostile fields each."""
    import random

    rng, out = random.Random(seed), []
    for i in range(n):
        if i % 3 == 2:
            q: dict = {"namespace": "hostile/a"}
            for _ in range(rng.randint(1, 2)):
                q[rng.choice(["namespace", "since", "until", "tags_any", "tags_all", "text_contains", "query"])] = (
                    rng.choice(POOL + [[rng.choice(POOL)]])
                )
            out.append((f"recall {i}", "POST", "/v1/recall", {"content": raw(json.dumps(q))}))
            continue
        rec: dict = {"id": f"g{i}", "namespace": "hostile/gen", "text": "t"}
        for _ in range(rng.randint(1, 2)):
            field = rng.choice(FIELDS + ["metadata"])
            if field == "metadata":
                rec["metadata"] = {"mem_os": {rng.choice(["heat", "last_accessed_at", "tier"]): rng.choice(POOL)}}
            else:
                rec[field] = rng.choice(POOL)
        out.append((f"remember {i}", "POST", "/v1/memories", {"content": raw(json.dumps(rec))}))
    return out


def _figures(kind: str, cases: int, fivexx: int, tracebacks: int, drops: int) -> dict:
    return {"kind": kind, "cases": cases, "5xx_or_crash": fivexx, "tracebacks": tracebacks, "silent_drops": drops}


def run_requests(tmp) -> tuple[dict, dict]:
    import sqlite3
    import time
    from pathlib import Path

    import httpx

    from .gatewayproc import GatewayProcess, project_copy

    g = GatewayProcess(project_copy(tmp), tmp / "data", "shadow").start()
    fivexx, acked, cases = 0, [], requests_for_run()
    try:
        for _name, method, path, kw in cases:
            headers = {"X-Agent-Id": "hostile", **kw.get("headers", {})}
            try:
                r = httpx.request(method, g.url + path, timeout=30, **{**kw, "headers": headers})
            except httpx.HTTPError:
                fivexx += 1  # no answer at all
                continue
            fivexx += r.status_code >= 500
            if r.status_code == 200 and path == "/v1/memories" and method == "POST":
                acked.append(json.loads(kw["content"]) if "content" in kw else kw["json"])
        end = time.monotonic() + 30
        while time.monotonic() < end and sum(g.status()["outbox"]["depth"].values()):
            time.sleep(0.2)
        drops = 0
        for rec in acked:  # acknowledged: both stores hold it under the same key
            for db in ("legacy.db", "memoryos.db"):
                c = sqlite3.connect(g.data / db)
                n = c.execute("SELECT count(*) FROM records WHERE namespace=? AND id=?", (rec["namespace"], rec["id"]))
                drops += n.fetchone()[0] != 1
        dead = g.status()["outbox"]["dead_letters"]
    finally:
        g.stop()
    tb = Path(g.log.name).read_text(errors="replace").count("Traceback")
    return _figures("requests", len(cases), fivexx, tb, drops + dead), {"acknowledged": len(acked)}


def requests_for_run() -> list[tuple[str, str, str, dict]]:
    return [(n, m, p, dict(kw)) for n, m, p, kw, _ in REQUESTS] + generated_requests()


def run_flag_files(tmp) -> dict:
    import time
    from pathlib import Path

    import httpx

    from .gatewayproc import GatewayProcess, project_copy

    g = GatewayProcess(project_copy(tmp), tmp / "flagdata", "canary").start()
    flags = g.data / "flags.json"
    good = flags.read_bytes()
    cases = FLAG_FILES + bad_flag_variants(json.loads(good))
    fivexx = unnoticed = 0
    try:
        for _name, text in cases:
            flags.write_bytes(text)
            time.sleep(0.6)  # the gateway re-reads the file every 0.2 s here (a figure, not an assertion)
            for path in ("/v1/recall", "/admin/status"):
                try:
                    if path == "/admin/status":
                        r = g.admin().get(path)
                        unnoticed += r.status_code == 200 and r.json()["flags"].get("config_ok", True)
                    else:
                        r = g.client().post(path, json={"namespace": "a"})
                    fivexx += r.status_code >= 500
                except (httpx.HTTPError, ValueError):
                    fivexx += 1
            flags.write_bytes(good)
            time.sleep(0.6)
    finally:
        g.stop()
    tb = Path(g.log.name).read_text(errors="replace").count("Traceback")
    # a gateway started on a bad flag file
    import subprocess
    import sys

    start_tb = start_bad = 0
    for text in (b"", b"{}", b'{"flags": {}}'):
        f = tmp / "start-flags.json"
        f.write_bytes(text)
        args = [sys.executable, "-m", "cutover.cli", "serve", "--phase", "canary", "--port", "1"]
        args += ["--data-dir", str(tmp / "s"), "--flags-file", str(f), "--project-dir", str(g.project)]
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=20)
            start_tb += "Traceback" in r.stderr
            start_bad += r.returncode != 2
        except subprocess.TimeoutExpired:  # it started and served on a bad file
            start_bad += 1
    return _figures("flag files", len(cases) + 3, fivexx + start_bad, tb + start_tb, unnoticed)


def run_webhooks(tmp) -> dict:
    from starlette.testclient import TestClient

    from cutover.flags.backend import FlagFile
    from cutover.flags.document import dumps, render_flags
    from cutover.ops.controller import Controller
    from cutover.ops.webhook import controller_app
    from cutover.plan.model import load_plan

    plan = load_plan(ROOT / "rollout.yaml")
    flags = tmp / "ctl-flags.json"
    flags.write_text(dumps(render_flags(plan, "canary", "staging")))
    ctrl = Controller(plan, "staging", FlagFile(flags), "s3cret", tmp / "rollbacks.jsonl")
    client = TestClient(controller_app(ctrl), raise_server_exceptions=False)
    fivexx = 0
    for _name, payload, _status in WEBHOOKS:
        r = client.post("/alertmanager", content=payload, headers={"X-Cutover-Secret": "s3cret"})
        fivexx += r.status_code >= 500
    return _figures("webhooks", len(WEBHOOKS), fivexx, 0, 0)


def run_plans(tmp) -> dict:
    import subprocess
    import sys

    cases = plan_cases()
    bad = tb = accepted = 0
    for _name, text in cases:
        p = tmp / "rollout.yaml"
        p.write_bytes(text)
        r = subprocess.run(
            [sys.executable, "-m", "cutover.cli", "plan", "validate", str(p)], capture_output=True, text=True
        )
        out = r.stdout + r.stderr
        tb += "Traceback" in out
        accepted += r.returncode == 0
        bad += r.returncode not in (0, 2) or (f"{p}:" not in out and r.returncode != 0)
    return _figures("plans", len(cases), bad, tb, accepted)


def run_records(tmp) -> dict:
    from cutover.migration.migrate import migrate
    from cutover.migration.options import Options
    from cutover.migration.tiering import load_policy

    cases = migration_records()
    src = tmp / "export.jsonl"
    lines = []
    for i, (_n, rec) in enumerate(cases):
        lines += [json.dumps(rec), json.dumps({"id": f"ok{i}", "namespace": "mig/a", "text": "good"})]
    src.write_text("\n".join(lines) + "\n")
    crash = 0
    try:
        counts = migrate(Options(source=f"jsonl:{src}", target=f"sqlite:{tmp / 'm.db'}", policy=load_policy()))
        unquarantined = len(cases) - counts["quarantined"]
    except Exception:
        crash, unquarantined = 1, len(cases)
    return _figures("records", len(cases), crash, crash, unquarantined)


def main() -> None:
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp(prefix="hostile-"))
    rows = [run_plans(tmp), run_records(tmp), run_webhooks(tmp), run_flag_files(tmp)]
    req, extra = run_requests(tmp)
    rows.insert(0, req)
    print("| kind | cases | 5xx / crash | tracebacks | silent drops (unnoticed, accepted, unquarantined) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['cases']} | {r['5xx_or_crash']} | {r['tracebacks']} | {r['silent_drops']} |")
    print(f"acknowledged writes checked in both stores: {extra['acknowledged']}")


if __name__ == "__main__":
    main()
