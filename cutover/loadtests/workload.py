"""The agent-memory workload shared by every scenario, and the per-request sample recorder.

Many agents (targeting keys, sent as X-Agent-Id) write and recall memories in shared team
namespaces, with text from a generated corpus; recall queries hit (corpus words) or miss (words
that never occur). Every request becomes one JSON line in the samples file:
ts, cohort (read from the gateway's X-Cutover-Cohort header, so the split is the real one), agent, op,
latency_ms, ok, status, phase (X-Cutover-Phase: the phase of the flags that answered), and for
recall the returned ids and a query key.

Options (after the locustfile's own): --samples PATH, --agents N, --namespaces N, --miss-share X,
--recall-share X. Loopback by default; runs are bounded by Locust's --run-time.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from typing import TYPE_CHECKING, Any, TextIO

from locust import HttpUser, between, events, task
from locust.runners import WorkerRunner

if TYPE_CHECKING:
    from locust.argument_parser import LocustArgumentParser
    from locust.env import Environment
    from requests import Response

VOCAB = [
    "apple",
    "travel",
    "plan",
    "meeting",
    "budget",
    "project",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "mountain",
    "coffee",
    "invoice",
    "contract",
    "launch",
    "design",
    "review",
    "memory",
    "agent",
    "tool",
    "search",
    "index",
    "vector",
    "chart",
    "roadmap",
    "customer",
    "incident",
    "deploy",
    "kernel",
    "garden",
    "recipe",
    "music",
    "ticket",
    "flight",
    "hotel",
    "doctor",
    "lesson",
]
MISSES = ("zyzzyva", "quixotic", "flummox", "snollygoster", "gobbledygook", "bumfuzzle")

_writer: dict[str, TextIO | None] = {"f": None}


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]  # locust's add_listener is unannotated
def _options(parser: LocustArgumentParser) -> None:
    parser.add_argument("--samples", default="samples.jsonl", help="per-request samples (JSON lines)")
    parser.add_argument("--agents", type=int, default=2000, help="distinct agent ids (targeting keys)")
    parser.add_argument("--namespaces", type=int, default=20, help="shared team namespaces")
    parser.add_argument("--miss-share", type=float, default=0.2, help="share of recall queries that match nothing")
    parser.add_argument("--recall-share", type=float, default=0.7, help="share of requests that are recalls")
    parser.add_argument(
        "--precise-keys",
        type=int,
        default=0,
        help="if N > 0: texts carry one of N key words and recalls ask for one, so each query matches a few records",
    )


@events.init.add_listener  # type: ignore[untyped-decorator]  # locust's add_listener is unannotated
def _open(environment: Environment, **kw: Any) -> None:
    path = environment.parsed_options.samples  # type: ignore[union-attr]  # Locust parses its options before init
    if isinstance(environment.runner, WorkerRunner):  # one file per worker process (and per pod: pids repeat)
        root, ext = os.path.splitext(path)
        path = f"{root}.{socket.gethostname()}-{os.getpid()}{ext or '.jsonl'}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _writer["f"] = open(path, "a", buffering=1)


@events.quitting.add_listener  # type: ignore[untyped-decorator]  # locust's add_listener is unannotated
def _close(environment: Environment, **kw: Any) -> None:
    if _writer["f"]:
        _writer["f"].close()


@events.request.add_listener  # type: ignore[untyped-decorator]  # locust's add_listener is unannotated
def _record(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: Response | None = None,
    context: dict[str, Any] | None = None,
    exception: BaseException | None = None,
    **kw: Any,
) -> None:
    ctx = context or {}
    if "op" not in ctx or _writer["f"] is None:
        return
    status = getattr(response, "status_code", 0) or 0
    sample: dict[str, Any] = {
        "ts": time.time(),
        "op": ctx["op"],
        "agent": ctx.get("agent"),
        "latency_ms": float(response_time),
        "ok": exception is None and status == 200,
        "status": status,
        "cohort": (response.headers.get("X-Cutover-Cohort") if response is not None else None) or "unknown",
    }
    phase = response.headers.get("X-Cutover-Phase") if response is not None else None
    if phase:
        sample["phase"] = phase
    phase = response.headers.get("X-Cutover-Phase") if response is not None else None
    if phase:
        sample["phase"] = phase
    if ctx["op"] == "recall":
        sample["query"] = ctx["query"]
        try:
            sample["ids"] = [r["id"] for r in response.json()["records"]] if sample["ok"] else None  # type: ignore[union-attr]  # ok: a 200 response
        except (ValueError, KeyError, TypeError):
            sample["ids"] = None
    _writer["f"].write(json.dumps(sample) + "\n")


def sentence(rng: random.Random, n: int = 10) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


class AgentMemoryUser(HttpUser):
    """One simulated client that speaks for many agents (each request picks one)."""

    abstract = True
    wait_time = between(0.0, 0.02)

    def on_start(self) -> None:
        o = self.environment.parsed_options
        self.rng = random.Random(hash((id(self), time.time())))
        self.agents, self.namespaces = o.agents, o.namespaces
        self.miss_share, self.recall_share, self.keys = o.miss_share, o.recall_share, o.precise_keys
        self.n = 0

    def _headers(self) -> dict[str, str]:
        self.agent = f"agent-{self.rng.randrange(self.agents)}"
        return {"X-Agent-Id": self.agent}

    @task
    def step(self) -> None:
        ns = f"team/{self.rng.randrange(self.namespaces)}"
        if self.rng.random() < self.recall_share:
            if self.rng.random() < self.miss_share:
                query = self.rng.choice(MISSES)
            elif self.keys:
                query = f"kw{self.rng.randrange(self.keys)}"
            else:
                query = " ".join(self.rng.sample(VOCAB, 2))
            headers = self._headers()
            self.client.post(
                "/v1/recall",
                json={"namespace": ns, "query": query, "limit": 10},
                headers=headers,
                name="recall",
                context={"op": "recall", "query": f"{ns}|{query}", "agent": self.agent},
            )
        else:
            self.n += 1
            text = sentence(self.rng) + (f" kw{self.rng.randrange(self.keys)}" if self.keys else "")
            body = {
                "id": f"{id(self):x}-{self.n}",
                "namespace": ns,
                "text": text,
                "tags": [self.rng.choice(("note", "fact", "persona:alice", "long_term"))],
            }
            headers = self._headers()
            self.client.post(
                "/v1/memories",
                json=body,
                headers=headers,
                name="remember",
                context={"op": "remember", "agent": self.agent},
            )
