"""How far MemoryOS drifts from legacy on live traffic: shadow reads sampled off the request path,
each pair of answers a drift sample, and the parity window the drift gate reads."""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable

from cutover.gateway.metrics import GatewayMetrics
from cutover.gateway.shadow import answer_keys, shadow_sample
from cutover.judge.drift import DriftWindow, Readiness
from cutover.plan.model import Plan
from cutover.store.faults import FaultyStore
from cutover.store.interface import Store, StoreError
from cutover.store.records import RecallQuery, Record


class DriftMonitor:
    """Shadow reads off the request path: a bounded queue, a sampling rate, drift samples."""

    def __init__(
        self,
        plan: Plan,
        memoryos: FaultyStore,
        metrics: GatewayMetrics,
        seed: int | None = None,
        sink: Callable[[tuple[str, RecallQuery, list[tuple[str, str]]]], bool] | None = None,
        legacy: Store | None = None,
    ) -> None:
        """sink(message) -> bool: hand the shadow read to the background process (False: its queue
        is full). Without a sink, a thread of this process does the reads (with `legacy`, the store
        that answered: the parity check asks it for MemoryOS's answer)."""
        self.plan, self.memoryos, self.legacy, self.metrics, self.sink = plan, memoryos, legacy, metrics, sink
        self.queue: queue.Queue[tuple[RecallQuery, list[tuple[str, str]]]] = queue.Queue(
            maxsize=plan.gateway.shadow_queue
        )
        self.window = DriftWindow()  # parity drift, the gate's measure (cutover.judge.drift)
        self.dropped = self.errors = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        metrics.drift_ready.set_function(lambda: 1.0 if self.readiness().ready else 0.0)
        self._thread: threading.Thread | None = None
        if sink is None:
            if legacy is None:
                raise ValueError("shadow reads in a thread of this process need the legacy store")
            self._thread = threading.Thread(target=self._run, args=(legacy,), name="shadow-reads", daemon=True)
            self._thread.start()

    def offer(self, q: RecallQuery, legacy: list[Record]) -> None:
        if self._rng.random() >= self.plan.analysis.shadow_sample_rate:
            return
        message = (q, answer_keys(legacy))
        if self.sink is not None:
            if not self.sink(("shadow", *message)):
                self.dropped += 1
            return
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1

    def _run(self, legacy_store: Store) -> None:
        k, p = self.plan.analysis.top_k, self.plan.analysis.rbo_p
        while not self._stop.is_set():
            try:
                q, legacy = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                sample = shadow_sample(q, legacy, self.memoryos, legacy_store, k, p)
            except (StoreError, Exception):  # a failing shadow read is counted, never raised
                self.errors += 1
                continue
            self.record(*sample)

    def record(self, parity: float, jaccard: float, rbo_distance: float) -> None:
        """One drift sample: O(1) here (this runs in the serving process, once per shadow read); the
        drift_ready gauge is worked out when Prometheus scrapes it."""
        with self._lock:
            self.window.add(parity)
        self.metrics.drift.labels(measure="parity").observe(parity)
        self.metrics.drift.labels(measure="jaccard").observe(jaccard)
        self.metrics.drift.labels(measure="rbo").observe(rbo_distance)

    def readiness(self, drift_max: float | None = None) -> Readiness:
        eff_max = self.plan.monitoring.drift_max if drift_max is None else drift_max
        with self._lock:
            return self.window.readiness(
                self.plan.analysis.drift_gate_min_samples, eff_max, self.plan.gateway.drift_confidence
            )

    def restart_window(self) -> int:
        """Drop every drift sample so far; the gate starts over. Returns how many were dropped."""
        with self._lock:
            n = len(self.window)
            self.window.clear()
        return n

    def close(self) -> None:
        self._stop.set()
