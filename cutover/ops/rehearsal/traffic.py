"""The rehearsal's traffic and waits."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from cutover.ops.rehearsal.harness import DURATION_SCALE, Harness


class Traffic(Harness):
    """Agent traffic against the rehearsal's gateway, and the waits an operator makes between steps
    (alerts resolved, a phase's minimum duration spent) before asking a gate."""

    def traffic(self, seconds: float, threads: int = 4, writes: float = 0.3) -> dict[str, Any]:
        """Clients on loopback: recalls of precise keys over the corpus and new writes; counts answers."""
        import random

        stats: dict[str, Any] = {"ok": 0, "errors": 0, "fallbacks": 0, "acked": set()}
        stop = time.monotonic() + seconds
        lock = threading.Lock()

        def worker(w: int) -> None:
            rng = random.Random(w * 7919 + int(time.time()))
            with httpx.Client(base_url=self.gw, timeout=5) as c:
                while time.monotonic() < stop:
                    k = rng.randrange(300)
                    headers = {"X-Agent-Id": f"agent-{rng.randrange(500)}"}
                    try:
                        if rng.random() < writes:
                            rid = f"t{w}-{rng.getrandbits(40):x}"
                            r = c.post(
                                "/v1/memories",
                                json={"id": rid, "namespace": f"corp/{k % 20}", "text": f"note kw{k}"},
                                headers=headers,
                            )
                            if r.status_code == 200:
                                with lock:
                                    stats["acked"].add((f"corp/{k % 20}", rid))
                        else:
                            r = c.post(
                                "/v1/recall",
                                json={"namespace": f"corp/{k % 20}", "query": f"kw{k}", "limit": 10},
                                headers=headers,
                            )
                        ok = r.status_code == 200
                        fb = ok and r.json().get("fallback", False)
                    except httpx.HTTPError:
                        ok, fb = False, False
                    with lock:
                        stats["ok" if ok else "errors"] += 1
                        stats["fallbacks"] += bool(fb)

        ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        return stats

    def wait_alerts_resolved(self, phase: str) -> bool:
        """As an operator would: roll forward only once the abort alerts have resolved, or the
        controller rolls the new flags back again as soon as its hold-down is over."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.firing_rollback_alerts():
            self.traffic(2, threads=2, writes=0.2)
        still = self.firing_rollback_alerts()
        return self.check(
            phase,
            "no abort alert firing before moving on",
            not still,
            f"still firing: {', '.join(still)}" if still else "",
        )

    def wait_min_duration(self) -> None:
        """As an operator would: the phase's minimum duration (on the rehearsal's clock) is spent
        before its gate is asked; traffic goes on meanwhile."""
        from cutover.flags.state import phase_since, state_of

        doc = self.flags.read()
        since = phase_since(doc)
        if since is None:
            return
        left = since + self.plan.phase(state_of(doc).phase).min_duration / DURATION_SCALE - time.time()
        if left > 0:
            self.traffic(left + 0.5, threads=2, writes=0.2)

    def gate(self, phase: str, expect_open: bool = True) -> bool:
        """`cutover gate`, as an operator runs it. expect_open=False: the check is that it refuses."""
        if expect_open:
            self.wait_min_duration()
        r = self.cutover(
            "gate",
            "--phase",
            phase,
            "--evidence",
            str(self.out / "evidence"),
            "--stack",
            "staging",
            "--flags-file",
            str(self.flags.path),
            "--time-scale",
            str(DURATION_SCALE),
            "--file",
            str(self.plan_path),
        )
        opened = r.returncode == 0
        detail = " ".join((r.stdout + r.stderr).split())[-400:]
        if expect_open:
            return self.check("gate", f"gate into {phase} open", opened, detail)
        return self.check("gate", f"gate into {phase} stays closed", r.returncode == 1, detail)
