"""Open-loop load at a fixed request rate over keep-alive HTTP/1.1 (asyncio streams, no client library).

Latency is measured from each request's *scheduled* send time, so a stalled server is charged for
the requests it delayed (no coordinated omission). Used by gateway_bench.py, in its own process:

    python benchmarks/openloop.py URL OP RATE SECONDS SEED   ->  JSON {p50, p99, rps, errors, lat}

`lat` is every request's latency (ms, 0.01 ms steps), so that runs can be pooled: one run of a few
seconds at a few hundred requests/s has its p99 in its 20 slowest requests.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from urllib.parse import urlparse

from vocabulary import WORDS as VOCABULARY  # run as a script: benchmarks/ is first on the path

WORDS = VOCABULARY[:20]


def body_for(op: str, rng: random.Random, i: int, seed: int) -> tuple[str, bytes]:
    if op == "recall":
        doc = {"namespace": f"agents/{rng.randrange(50)}", "query": " ".join(rng.sample(WORDS, 2)), "limit": 10}
        return "/v1/recall", json.dumps(doc).encode()
    doc = {"id": f"o{seed}-{i}", "namespace": f"agents/{rng.randrange(50)}", "text": " ".join(rng.sample(WORDS, 6))}
    return "/v1/memories", json.dumps(doc).encode()


async def one(conn_pool: asyncio.Queue, host: str, port: int, path: str, body: bytes, agent: str) -> int:
    try:
        reader, writer = conn_pool.get_nowait()
    except asyncio.QueueEmpty:
        reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nX-Agent-Id: {agent}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    conn_pool.put_nowait((reader, writer))
    return int(status_line.split()[1])


async def run(url: str, op: str, rate: float, seconds: float, seed: int) -> dict:
    u = urlparse(url)
    rng = random.Random(seed)
    pool: asyncio.Queue = asyncio.Queue()
    lat: list[float] = []
    errors = 0
    tasks = []
    start = time.perf_counter() + 0.2
    n = int(rate * seconds)

    async def fire(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        path, body = body_for(op, rng, i, seed)
        try:
            status = await one(pool, u.hostname, u.port, path, body, f"agent-{rng.randrange(500)}")
            errors += status != 200
        except OSError:
            errors += 1
        lat.append((time.perf_counter() - scheduled) * 1000)

    for i in range(n):
        tasks.append(asyncio.create_task(fire(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    lat.sort()
    return {
        "p50": lat[len(lat) // 2],
        "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "rps": n / elapsed,
        "requests": n,
        "errors": errors,
        "lat": [round(x, 2) for x in lat],
    }


if __name__ == "__main__":
    url, op, rate, seconds, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    print(json.dumps(asyncio.run(run(url, op, rate, seconds, seed))))
