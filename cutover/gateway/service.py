"""The memory gateway: per request the flags choose the read path and the write mode.

- legacy: answers and writes from legacy only;
- mirror (write mode): the primary write commits and the copy goes through the durable outbox;
  memoryos-primary mirrors back to legacy, so a rollback to legacy loses nothing;
- shadow (read path): the answer comes from legacy; a sample of reads also runs against MemoryOS off
  the request path and each pair gives a drift sample;
- memoryos (read path): the answer comes from MemoryOS; on error or timeout it falls back to legacy.
The kill switch forces legacy reads for everyone.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict, TypeVar, overload

from prometheus_client import CollectorRegistry, ProcessCollector

from cutover.gateway.background import Background, ChildSpec, Message, OutboxSpec, StoreSpec
from cutover.gateway.drift import DriftMonitor
from cutover.gateway.flagreader import Decision, FlagReader
from cutover.gateway.metrics import GatewayMetrics
from cutover.gateway.outbox import MirrorWorker, Outbox
from cutover.plan.model import Plan
from cutover.store.faults import FaultyStore
from cutover.store.interface import StoreError
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.records import RecallQuery, Record
from cutover.store.remote import HttpStore
from cutover.store.sqlite import SqliteStore

log = logging.getLogger("cutover.gateway")
WAL_KEEP_S = 1.0  # the gateway checkpoints its SQLite files this often

# write mode -> (primary store, mirror store)
WRITE_ROUTES: dict[str, tuple[str, str | None]] = {
    "legacy": ("legacy", None),
    "mirror": ("legacy", "memoryos"),
    "memoryos-primary": ("memoryos", "legacy"),
}

T = TypeVar("T")


class RequestInfo(TypedDict):
    """How a request was answered: the response carries it (body and X-Cutover-* headers)."""

    path: str
    fallback: bool
    cohort: str
    phase: NotRequired[str | None]  # the phase of the flags that decided (a header only)
    write_mode: NotRequired[str]
    read_path: NotRequired[str]
    fallback_reason: NotRequired[str]


class Gateway:
    """The request logic, independent of HTTP: tests and the ASGI shell call the same methods."""

    def __init__(
        self,
        plan: Plan,
        phase: str | None,
        stack: str,
        legacy: LegacyStore | MemoryOSStore | HttpStore,
        memoryos: LegacyStore | MemoryOSStore | HttpStore,
        flags_path: Path | str,
        data_dir: Path,
        registry: CollectorRegistry | None = None,
        flag_poll_ms: int = 500,
        background: bool = True,
    ) -> None:
        """background: the mirror worker and the shadow reads run in a child process (cutover.gateway.background)
        when the stores can be reopened there; False, or stores that cannot, keep them in threads."""
        self.plan, self.stack = plan, stack
        self.legacy, self.memoryos = FaultyStore(legacy), FaultyStore(memoryos)
        self.stores = {"legacy": self.legacy, "memoryos": self.memoryos}
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes etc., for soak runs
        self.metrics = GatewayMetrics(plan, self.registry)
        self.flags = FlagReader(
            plan,
            flags_path,
            flag_poll_ms,
            on_error=lambda r: self.metrics.flag_config_errors.labels(reason=r).inc(),
            work_dir=Path(data_dir),
            on_rollback=lambda trigger, level: self.metrics.rollbacks.labels(trigger=trigger, level=level).inc(),
        )
        # phase None (a Deployment: no phase in its arguments): the phase the live flags carry
        self.phase = phase or self.flags.phase() or plan.phase_names[0]
        plan.index(self.phase)  # an unknown phase is refused here
        self.metrics.phase_info.labels(phase=self.phase, stack=stack).set(1)
        self._phase_shown = self.phase
        g = plan.gateway
        # One outbox per primary: inside a SQLite store's own file (the write and its mirror row commit
        # together), or a file of its own in data_dir for a remote store (enqueued before the write).
        retry = (g.outbox_max_attempts, g.outbox_backoff_s, g.outbox_backoff_max_s)
        self.outboxes = {
            n: Outbox(None, *retry, store=st.sqlite)
            if st.local
            else Outbox(Path(data_dir) / f"outbox-{n}.db", *retry, autocheckpoint=False)
            for n, st in self.stores.items()
        }
        self._copied = 0
        self.worker: MirrorWorker | None = None
        self.background: Background | None = None
        spec = self._child_spec(retry) if background else None
        if spec is not None:  # the mirror worker and the shadow reads in a process of their own
            self.background = Background(spec, g.shadow_queue, self._on_event)
            self.drift = DriftMonitor(plan, self.memoryos, self.metrics, sink=self.background.offer)
        else:
            self.worker = MirrorWorker(list(self.outboxes.values()), self.stores, on_failure=self._mirror_failure)
            self.worker.start()
            self.drift = DriftMonitor(plan, self.memoryos, self.metrics, legacy=self.legacy)
        self.candidate_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="candidate")
        self.timeout_s = g.candidate_timeout_ms / 1000
        self._keeper_stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep_wals, name="wal-keeper", daemon=True)
        self._keeper.start()

    def _keep_wals(self) -> None:
        """Checkpoint the SQLite files this process writes, each every WAL_KEEP_S, and let each WAL
        start over once it is long: the last step under this process's writer lock, which is why the
        gateway does it and not the mirror worker (see `store.sqlite.keep_wal`). One file at a time, spread
        over the interval, so that one file's checkpoint does not share the disk with the locked step
        (two fsyncs) of another. A store's full-text index is merged in the same round, just before
        (`SqliteStore.keep_index`)."""
        files: list[tuple[str, SqliteStore | Outbox]] = [
            (n, st.sqlite) if st.local else (f"outbox-{n}", self.outboxes[n]) for n, st in self.stores.items()
        ]
        turn = 0
        while not self._keeper_stop.wait(WAL_KEEP_S / len(files)):
            (name, f), turn = files[turn % len(files)], turn + 1
            try:
                if isinstance(f, SqliteStore):
                    f.keep_index()
                self.metrics.wal_frames.labels(file=name).set(f.keep_wal())
            except sqlite3.Error as e:  # busy or locked now: the next round tries again
                log.debug("WAL upkeep of %s: %s", getattr(f, "path", f), e)

    # -- background work ----------------------------------------------------------------------------
    def _child_spec(self, retry: tuple[int, float, float]) -> ChildSpec | None:
        try:
            stores = {n: StoreSpec.of(st) for n, st in self.stores.items()}
        except TypeError:
            return None
        boxes = [
            OutboxSpec(None, n, retry) if st.local else OutboxSpec(str(self.outboxes[n].path), None, retry)
            for n, st in self.stores.items()
        ]
        a = self.plan.analysis
        return ChildSpec(stores, boxes, {n: st.state() for n, st in self.stores.items()}, a.top_k, a.rbo_p, 10.0)

    def _mirror_failure(self, target: str, reason: str) -> None:
        self.metrics.mirror_failures.labels(target=target, reason=reason).inc()

    def _on_event(self, event: Message) -> None:
        kind = event[0]
        if kind == "drift":
            self.drift.record(event[1], event[2], event[3])
        elif kind == "shadow_error":
            self.drift.errors += 1
        elif kind == "mirror_failure":
            self._mirror_failure(event[1], event[2])
        elif kind == "copied":
            self._copied += event[1]
        elif kind == "done":  # rows the child copied: deleted here, under the requests' writer lock
            try:
                list(self.outboxes.values())[event[1]].done(event[2])
            except sqlite3.Error:
                pass  # left in the outbox: copied again later, idempotent

    @property
    def mirrored(self) -> int:
        return self.worker.copied if self.worker is not None else self._copied

    def set_fault(self, store: str, latency_ms: float = 0.0, error_rate: float = 0.0, outage: bool = False) -> None:
        """Inject (or clear) a fault on a store, here and in the background process."""
        self.stores[store].set(latency_ms, error_rate, outage)
        if self.background is not None and not self.background.set_fault(store, self.stores[store].state()):
            raise RuntimeError("the background process did not apply the fault within 5 s")

    # -- helpers ----------------------------------------------------------------------------------
    def decide(self, targeting_key: str, group: str | None) -> Decision:
        decision, variants = self.flags.evaluate(targeting_key, group)
        for flag, variant in variants.items():
            self.metrics.flag_evaluations.labels(flag=flag, variant=variant).inc()
        return decision

    def _observe(self, op: str, path: str, cohort: str, ok: bool, started: float) -> None:
        self.metrics.requests.labels(op=op, path=path, cohort=cohort, outcome="ok" if ok else "error").inc()
        self.metrics.duration.labels(op=op, path=path, cohort=cohort).observe(time.perf_counter() - started)

    def _candidate(self, fn: Callable[..., T], *args: object) -> T:
        """A MemoryOS call within the plan's budget; raises StoreError('timeout') past it.

        A local store runs in the request's own thread under a deadline (no hand-off: the common
        case stays cheap); a remote store runs in the candidate pool and is abandoned at the budget."""
        if self.memoryos.local:
            FaultyStore.deadline.at = time.monotonic() + self.timeout_s
            started = time.monotonic()
            try:
                result = fn(*args)
            finally:
                FaultyStore.deadline.at = None
            if time.monotonic() - started > self.timeout_s:
                raise StoreError("timeout")
            return result
        fut = self.candidate_pool.submit(fn, *args)
        try:
            return fut.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise StoreError("timeout") from None

    @staticmethod
    def _reason(exc: Exception) -> str:
        text = str(exc)
        return "timeout" if "timeout" in text else "outage" if "outage" in text else "error"

    def _primary(
        self, write_mode: str, op: str, namespace: str, id: str, call: Callable[[FaultyStore, str | None], T]
    ) -> T:
        """Run a write on the primary with its mirror row: in the same commit for a local store,
        enqueued just before the write for a remote one. `call(store, mirror_to)` does the write."""
        primary, mirror = WRITE_ROUTES[write_mode]
        store = self.stores[primary]
        if mirror and not store.local:
            self.outboxes[primary].enqueue(primary, mirror, namespace, id, op=op)
            return call(store, None)
        return call(store, mirror)

    def _observed(self, op: str, cohort: str, info: RequestInfo, fn: Callable[[], T]) -> T:
        """Run fn() and count the request with the path that answered (info["path"] may change)."""
        started = time.perf_counter()
        try:
            result = fn()
        except StoreError:
            self._observe(op, info["path"], cohort, False, started)
            raise
        self._observe(op, info["path"], cohort, True, started)
        return result

    @overload
    def _read(
        self, op: str, decision: Decision, info: RequestInfo, method: Literal["recall"], q: RecallQuery, /
    ) -> list[Record]: ...
    @overload
    def _read(
        self, op: str, decision: Decision, info: RequestInfo, method: Literal["get"], namespace: str, id: str, /
    ) -> Record | None: ...
    def _read(self, op: str, decision: Decision, info: RequestInfo, method: str, *args: Any) -> Any:
        """Read from MemoryOS within the budget when the treatment reads it, else (or on failure) legacy."""
        if decision.read_path == "memoryos":
            try:
                result = self._candidate(getattr(self.memoryos, method), *args)
                info["path"] = "memoryos"
                return result
            except StoreError as exc:
                reason = self._reason(exc)
                self.metrics.fallbacks.labels(op=op, reason=reason).inc()
                info.update({"fallback": True, "fallback_reason": reason})
        return getattr(self.legacy, method)(*args)

    # -- operations -------------------------------------------------------------------------------
    def remember(self, rec: Record, auto_version: bool, decision: Decision) -> tuple[Record, RequestInfo]:
        info: RequestInfo = {
            "path": WRITE_ROUTES[decision.write_mode][0],
            "fallback": False,
            "cohort": decision.cohort,
            "phase": decision.phase,
            "write_mode": decision.write_mode,
        }

        def put(store: FaultyStore, mirror_to: str | None) -> Record:
            return store.put(rec, auto_version, mirror_to=mirror_to)

        def write() -> Record:
            try:
                return self._primary(decision.write_mode, "put", rec.namespace, rec.id, put)
            except StoreError as exc:
                if info["path"] != "memoryos":
                    raise
                # MemoryOS-primary write failed: legacy takes it, the outbox copies it to MemoryOS later.
                self.metrics.fallbacks.labels(op="remember", reason=self._reason(exc)).inc()
                info.update({"path": "legacy", "fallback": True, "fallback_reason": self._reason(exc)})
                return self._primary("mirror", "put", rec.namespace, rec.id, put)

        return self._observed("remember", decision.cohort, info, write), info

    def recall(self, q: RecallQuery, decision: Decision) -> tuple[list[Record], RequestInfo]:
        info: RequestInfo = {
            "path": "legacy",
            "fallback": False,
            "cohort": decision.cohort,
            "phase": decision.phase,
            "read_path": decision.read_path,
        }

        def read() -> list[Record]:
            records = self._read("recall", decision, info, "recall", q)
            if decision.read_path == "shadow":
                self.drift.offer(q, records)
            return records

        return self._observed("recall", decision.cohort, info, read), info

    def get(self, namespace: str, id: str, decision: Decision) -> tuple[Record | None, RequestInfo]:
        info: RequestInfo = {"path": "legacy", "fallback": False, "cohort": decision.cohort, "phase": decision.phase}
        return self._observed(
            "get", decision.cohort, info, lambda: self._read("get", decision, info, "get", namespace, id)
        ), info

    def delete(self, namespace: str, id: str, decision: Decision) -> tuple[bool, RequestInfo]:
        info: RequestInfo = {
            "path": WRITE_ROUTES[decision.write_mode][0],
            "fallback": False,
            "cohort": decision.cohort,
            "phase": decision.phase,
        }

        def delete(store: FaultyStore, mirror_to: str | None) -> bool:
            return store.delete(namespace, id, mirror_to=mirror_to)

        found = self._observed(
            "delete", decision.cohort, info, lambda: self._primary(decision.write_mode, "delete", namespace, id, delete)
        )
        return found, info

    # -- status -----------------------------------------------------------------------------------
    def outbox_depth(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for box in self.outboxes.values():
            for target, n in box.depth().items():
                out[target] = out.get(target, 0) + n
        return out

    def outbox_oldest_age(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for box in self.outboxes.values():
            for target, age in box.oldest_age().items():
                out[target] = max(out.get(target, 0.0), age)
        return out

    def dead_letters(self) -> list[dict[str, Any]]:
        return [d for box in self.outboxes.values() for d in box.dead_letters()]

    def dead_letter_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for box in self.outboxes.values():
            for target, n in box.dead_letter_counts().items():
                out[target] = out.get(target, 0) + n
        return out

    def restart_drift_window(self) -> dict[str, int | float | None]:
        """A new drift window (after `cutover reconcile --repair`): the gate judges only shadow reads
        from now on. Returns the window that was dropped."""
        before = self.drift.readiness()
        dropped = self.drift.restart_window()
        log.info("drift window restarted: %d samples dropped (mean %s)", dropped, before.mean)
        return {"dropped_samples": dropped, "dropped_mean": before.mean, "dropped_upper_bound": before.upper_bound}

    def requeue_dead(self) -> int:
        return sum(box.requeue_dead() for box in self.outboxes.values())

    def live_phase(self) -> str:
        """The phase of the flags the gateway evaluates now (a rollback or `cutover flags --phase`
        changes it without a restart); the phase it started in when the flags name none."""
        return self.flags.phase() or self.phase

    def refresh_gauges(self) -> None:
        phase = self.live_phase()
        if phase != self._phase_shown:
            self.metrics.phase_info.remove(self._phase_shown, self.stack)
            self.metrics.phase_info.labels(phase=phase, stack=self.stack).set(1)
            self._phase_shown = phase
        depth, age, dead = self.outbox_depth(), self.outbox_oldest_age(), self.dead_letter_counts()
        for target in ("legacy", "memoryos"):
            self.metrics.outbox_depth.labels(target=target).set(depth.get(target, 0))
            self.metrics.outbox_age.labels(target=target).set(age.get(target, 0.0))
            self.metrics.outbox_dead.labels(target=target).set(dead.get(target, 0))

    def status(self) -> dict[str, object]:
        self.refresh_gauges()
        r = self.drift.readiness()
        probe, _ = self.flags.evaluate("status-probe", None)
        return {
            "phase": self.live_phase(),
            "started_in_phase": self.phase,
            "stack": self.stack,
            "flags": {
                "file": str(self.flags.path),
                "kill_switch": probe.kill,
                "write_mode": probe.write_mode,
                **self.flags.state(),
            },
            "outbox": {
                "depth": self.outbox_depth(),
                "oldest_age_s": self.outbox_oldest_age(),
                "dead_letters": sum(self.dead_letter_counts().values()),
                "dead_letters_by_target": self.dead_letter_counts(),
                "mirrored": self.mirrored,
            },
            "drift": {
                "samples": r.samples,
                "mean": r.mean,
                "upper_bound": r.upper_bound,
                "threshold": r.threshold,
                "dropped": self.drift.dropped,
                "errors": self.drift.errors,
            },
            "cutover_ready": {"ready": r.ready, "reason": r.reason},
            "faults": {name_: s.state() for name_, s in self.stores.items()},
        }

    def drain(self, timeout_s: float) -> int:
        """Let the mirror worker empty the outboxes (on shutdown, after the last request), for at most
        `timeout_s`. Returns the entries still waiting: they stay on disk and drain on the next start."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = sum(sum(o.depth().values()) for o in self.outboxes.values())
            if left == 0 or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)

    def close(self) -> None:
        self._keeper_stop.set()
        for store in self.stores.values():
            if store.local:
                store.sqlite.close()  # MemoryOS writes the last heat
        if self.worker is not None:
            self.worker.stop()
        if self.background is not None:
            self.background.close()
        self.drift.close()
        self.flags.close()
        self.candidate_pool.shutdown(wait=False, cancel_futures=True)
