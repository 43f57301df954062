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

import itertools
import json
import logging
import os
import queue
import random
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from cutover.gateway.background import Background, ChildSpec, OutboxSpec, StoreSpec
from cutover.gateway.outbox import MirrorWorker, Outbox
from cutover.gateway.shadow import answer_keys, shadow_sample
from cutover.judge.drift import DriftWindow
from cutover.plan.errors import CutoverError
from cutover.plan.metrics import DRIFT_BUCKETS, latency_buckets, name
from cutover.plan.model import Plan
from cutover.render.flags import kill_write_mode
from cutover.store.faults import FaultyStore
from cutover.store.interface import StoreError
from cutover.store.records import RecallQuery, Record
from cutover.store.sqlite import SqliteStore

log = logging.getLogger("cutover.gateway")
WAL_KEEP_S = 1.0  # the gateway checkpoints its SQLite files this often

_domains = itertools.count()

# write mode -> (primary store, mirror store)
WRITE_ROUTES: dict[str, tuple[str, str | None]] = {
    "legacy": ("legacy", None),
    "mirror": ("legacy", "memoryos"),
    "memoryos-primary": ("memoryos", "legacy"),
}


def flagd_address(source: Path | str) -> tuple[str, int] | None:
    """`flagd://HOST:PORT` -> (HOST, PORT); a file path -> None."""
    text = str(source)
    if not text.startswith("flagd://"):
        return None
    host, _, port = text.removeprefix("flagd://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{text!r}: expected flagd://HOST:PORT, e.g. flagd://localhost:8013")
    return host, int(port)


@dataclass(frozen=True)
class Decision:
    cohort: str
    read_path: str
    write_mode: str
    kill: bool
    phase: str | None = None  # the phase the flags that decided carry (their flag-set metadata)


READ_PATHS = ("legacy", "shadow", "memoryos")


def flag_doc_problem(plan: Plan, raw: bytes) -> tuple[dict | None, str | None]:
    """(the flag document, None) when `raw` is a flag file the gateway can serve from, else (None, why):
    valid JSON, a `flags` object holding the plan's three flags (and the phase flag, if it is there),
    each with a state, variants of the right type and values, and a defaultVariant among them."""
    if not raw.strip():
        return None, "the file is empty"
    try:
        doc = json.loads(raw)
    except RecursionError:
        return None, "malformed JSON: nested too deep"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"malformed JSON: {str(exc).splitlines()[0][:200]}"
    if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
        return None, "no `flags` object"
    keys = plan.flag_keys
    allowed: dict[str, tuple] = {
        keys.kill_switch: (True, False),
        keys.read_path: READ_PATHS,
        keys.write_mode: tuple(WRITE_ROUTES),
    }
    if keys.phase in doc["flags"]:  # optional: flag sets rendered before it lack it
        allowed[keys.phase] = tuple(plan.phase_names)
    for key, values in allowed.items():
        flag = doc["flags"].get(key)
        where = f"flags.{key}"
        if not isinstance(flag, dict):
            return None, f"{where}: missing"
        if flag.get("state") not in ("ENABLED", "DISABLED"):
            return None, f"{where}.state: not ENABLED or DISABLED"
        variants = flag.get("variants")
        if not isinstance(variants, dict) or not variants:
            return None, f"{where}.variants: missing or empty"
        for name_, value in variants.items():
            if type(value) is not type(values[0]) or value not in values:
                return None, f"{where}.variants.{name_}: {value!r} is not one of {list(values)}"
        if flag.get("defaultVariant") not in variants:
            return None, f"{where}.defaultVariant: not one of the variants"
        if "targeting" in flag and not isinstance(flag["targeting"], dict):
            return None, f"{where}.targeting: not an object"
    if not isinstance(doc.get("$evaluators", {}), dict):
        return None, "$evaluators: not an object"
    return doc, None


class FlagReader:
    """Evaluates the flag file with the flagd provider (openfeature-provider-flagd, FILE mode: the file
    is re-read on change). Decisions are cached per (targeting key, group) and the cache is dropped
    whenever the provider reports a configuration change, so a flag flip applies on the next reload.

    The provider never reads the operator's file itself: a watcher checks each new version of it
    (`flag_doc_problem`) and only a good one is copied (atomically) to the private file the provider
    reads. A bad version leaves the last good flag set in force, counted in
    cutover_flag_config_errors_total{reason="invalid"}, shown in /admin/status (flags.config_ok,
    flags.config_error) and logged at most once per LOG_EVERY_S. A bad file at start is refused."""

    CACHE_SIZE = 100_000
    LOG_EVERY_S = 30.0

    def __init__(self, plan: Plan, path: Path | str, poll_ms: int = 500, on_error=None, work_dir: Path | None = None):
        """`path`: the flag file (FILE mode), or `flagd://HOST:PORT` for a flagd daemon such as the
        sidecar the OpenFeature Operator injects (RPC mode; flag changes arrive on its event stream)."""
        from openfeature import api
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType
        from openfeature.evaluation_context import EvaluationContext
        from openfeature.event import ProviderEvent
        from openfeature.exception import ProviderNotReadyError

        self.plan, self.path, self._ctx = plan, path, EvaluationContext
        self.domain = f"cutover-gateway-{next(_domains)}"
        self.on_error = on_error or (lambda reason: None)
        self.config_error: str | None = None
        self.config_errors = self.evaluation_errors = 0
        self._last_log = -1e9
        self._defaults: Decision | None = None
        self._last_write = "legacy"
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        rpc = flagd_address(path)
        if rpc is None:
            self._source = Path(path)
            try:
                raw = self._source.read_bytes()
            except OSError as exc:
                raise CutoverError(f"flag file unreadable: {exc.strerror}", file=str(path)) from None
            doc, why = flag_doc_problem(plan, raw)
            if doc is None:
                raise CutoverError(
                    f"flag file refused: {why}",
                    file=str(path),
                    fix="render a good one: cutover flags --flags-file PATH (or let cutover serve render it)",
                )
            # kept after close (the provider's file watcher may look once more): overwritten at the next start
            base = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="cutover-flags-"))
            self._effective = base / "flags.in-force.json"
            self._install(raw, doc)
            self._poll_s = poll_ms / 1000
        if rpc is not None:
            # 2 s per evaluation call, per startup attempt and as the least reconnect backoff
            self.provider = FlagdProvider(resolver_type=ResolverType.RPC, host=rpc[0], port=rpc[1], deadline_ms=2000)
        else:
            self.provider = FlagdProvider(
                resolver_type=ResolverType.FILE, offline_flag_source_path=str(self._effective), deadline_ms=poll_ms
            )
        self._cache: dict[tuple[str, str | None], tuple[Decision, dict[str, str]]] = {}
        started = time.monotonic()
        while True:  # a flagd sidecar may come up after the gateway: keep trying for 30 s
            try:
                api.set_provider_and_wait(self.provider, domain=self.domain)
                break
            except ProviderNotReadyError:
                if rpc is None or time.monotonic() - started > 30:
                    raise
        self.client = api.get_client(domain=self.domain)
        self.client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, lambda _details: self._cache.clear())
        self.client.add_handler(ProviderEvent.PROVIDER_READY, lambda _details: self._cache.clear())
        if rpc is None:
            self._watcher = threading.Thread(target=self._watch, name="flag-file-watch", daemon=True)
            self._watcher.start()

    # -- the flag file: only good versions reach the provider -----------------------------------------
    def _install(self, raw: bytes, doc: dict) -> None:
        self._raw = raw
        self._defaults = self._default_decision(doc)
        tmp = self._effective.with_suffix(".tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, self._effective)

    def _default_decision(self, doc: dict) -> Decision:
        """What the flag set answers without targeting: used for a request whose evaluation fails."""
        keys, flags = self.plan.flag_keys, doc["flags"]
        value = lambda key: flags[key]["variants"][flags[key]["defaultVariant"]]  # noqa: E731
        write = value(keys.write_mode)
        if value(keys.kill_switch):
            return Decision("control", "legacy", kill_write_mode(self.plan, write), True)
        return Decision("control", value(keys.read_path), write, False)

    def _watch(self) -> None:
        while not self._watch_stop.wait(self._poll_s):
            why: str | None
            try:
                raw = self._source.read_bytes()
            except OSError as exc:
                raw, why = None, f"flag file unreadable: {exc.strerror}"
            if raw is not None and raw == self._raw:
                continue
            if raw is not None:
                doc, why = flag_doc_problem(self.plan, raw)
                if doc is not None:
                    self._install(raw, doc)
                    if self.config_error is not None:
                        log.warning("flag file %s is good again: its flags are in force", self._source)
                    self.config_error = None
                    continue
                self._raw = raw  # counted once per bad version, not once per poll
            if why == self.config_error:
                continue
            self.config_error = why
            self.config_errors += 1
            self.on_error("invalid")
            self._log_limited(f"flag file {self._source} refused ({why}): the last good flag set stays in force")

    def _log_limited(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= self.LOG_EVERY_S:
            self._last_log = now
            log.error(message)

    def state(self) -> dict:
        return {
            "config_ok": self.config_error is None,
            "config_error": self.config_error,
            "config_errors": self.config_errors,
            "evaluation_errors": self.evaluation_errors,
        }

    def evaluate(self, targeting_key: str, group: str | None) -> tuple[Decision, dict[str, str]]:
        hit = self._cache.get((targeting_key, group))
        if hit is not None:
            return hit
        try:
            result = self._evaluate(targeting_key, group)
        except Exception as exc:  # a flag set the provider cannot evaluate: the safe answer, counted
            self.evaluation_errors += 1
            self.on_error("evaluation")
            self._log_limited(f"flag evaluation failed ({type(exc).__name__}: {exc}): answering from the defaults")
            # the flag file's defaults; with flagd, legacy reads and the last write mode seen (mirroring goes on)
            fallback = self._defaults or Decision("control", "legacy", self._last_write, False)
            return fallback, {}
        self._last_write = result[0].write_mode
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[(targeting_key, group)] = result
        return result

    def _evaluate(self, targeting_key: str, group: str | None) -> tuple[Decision, dict[str, str]]:
        keys, tg, p = self.plan.flag_keys, self.plan.targeting, self.provider
        ctx = self._ctx(tg.bucketing_key(targeting_key), {tg.internal_attribute: group} if group else {})
        kill = p.resolve_boolean_details(keys.kill_switch, False, ctx)
        read = p.resolve_string_details(keys.read_path, "legacy", ctx)
        write = p.resolve_string_details(keys.write_mode, "legacy", ctx)
        variants = {
            keys.kill_switch: kill.variant or "default",
            keys.read_path: read.variant or "default",
            keys.write_mode: write.variant or "default",
        }
        if not isinstance(kill.value, bool) or read.value not in READ_PATHS or write.value not in WRITE_ROUTES:
            raise ValueError(f"flag values out of range: {kill.value!r}, {read.value!r}, {write.value!r}")
        phase = self._phase(ctx, read.flag_metadata)
        if kill.value:
            return Decision("control", "legacy", kill_write_mode(self.plan, write.value), True, phase), variants
        cohort = read.variant if read.variant in ("control", "treatment") else "control"
        return Decision(cohort, read.value, write.value, False, phase), variants

    def _phase(self, ctx, metadata) -> str | None:
        """The phase flag's value; else the flag-set metadata's `phase` (a flag set from before the
        phase flag, in FILE mode); None when neither names a phase of the plan."""
        names = self.plan.phase_names
        value: object = self.provider.resolve_string_details(self.plan.flag_keys.phase, "", ctx).value
        if value not in names:
            value = (metadata or {}).get("phase")
        return value if isinstance(value, str) and value in names else None

    def phase(self) -> str | None:
        """The phase the live flags carry, or None when they carry none."""
        ctx = self._ctx("status-probe", {})
        details = self.provider.resolve_string_details(self.plan.flag_keys.read_path, "legacy", ctx)
        return self._phase(ctx, details.flag_metadata)

    def close(self) -> None:
        self._watch_stop.set()
        self.provider.shutdown()


class GatewayMetrics:
    def __init__(self, plan: Plan, registry: CollectorRegistry):
        n = lambda key: name(plan, key).removesuffix("_total")  # noqa: E731 - client adds _total
        self.requests = Counter(n("requests"), "requests", ["op", "path", "cohort", "outcome"], registry=registry)
        self.duration = Histogram(
            name(plan, "duration"),
            "request duration, s",
            ["op", "path", "cohort"],
            buckets=latency_buckets(plan),
            registry=registry,
        )
        self.fallbacks = Counter(n("fallbacks"), "fallbacks to legacy", ["op", "reason"], registry=registry)
        self.outbox_depth = Gauge(name(plan, "outbox_depth"), "outbox depth", ["target"], registry=registry)
        self.outbox_age = Gauge(
            name(plan, "outbox_oldest_age"), "oldest outbox entry age, s", ["target"], registry=registry
        )
        self.wal_frames = Gauge(
            name(plan, "wal_frames"), "WAL frames at the last checkpoint", ["file"], registry=registry
        )
        self.outbox_dead = Gauge(
            name(plan, "outbox_dead_letters"), "dead-lettered mirror writes", ["target"], registry=registry
        )
        self.mirror_failures = Counter(n("mirror_failures"), "mirror failures", ["target", "reason"], registry=registry)
        self.drift = Histogram(
            name(plan, "drift"), "retrieval drift", ["measure"], buckets=DRIFT_BUCKETS, registry=registry
        )
        self.flag_evaluations = Counter(
            n("flag_evaluations"), "flag evaluations", ["flag", "variant"], registry=registry
        )
        self.flag_config_errors = Counter(
            n("flag_config_errors"), "flag files refused and evaluations failed", ["reason"], registry=registry
        )
        self.rollbacks = Counter(n("rollbacks"), "rollbacks", ["trigger", "level"], registry=registry)
        self.phase_info = Gauge(name(plan, "phase_info"), "phase", ["phase", "stack"], registry=registry)
        self.drift_ready = Gauge(name(plan, "drift_ready"), "drift gate ready", registry=registry)


class DriftMonitor:
    """Shadow reads off the request path: a bounded queue, a sampling rate, drift samples."""

    def __init__(self, plan: Plan, memoryos, metrics: GatewayMetrics, seed: int | None = None, sink=None, legacy=None):
        """sink(message) -> bool: hand the shadow read to the background process (False: its queue
        is full). Without a sink, a thread of this process does the reads (with `legacy`, the store
        that answered: the parity check asks it for MemoryOS's answer)."""
        self.plan, self.memoryos, self.legacy, self.metrics, self.sink = plan, memoryos, legacy, metrics, sink
        self.queue: queue.Queue = queue.Queue(maxsize=plan.gateway.shadow_queue)
        self.window = DriftWindow()  # parity drift, the gate's measure (cutover.judge.drift)
        self.dropped = self.errors = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        metrics.drift_ready.set_function(lambda: 1.0 if self.readiness().ready else 0.0)
        if sink is None:
            self._thread = threading.Thread(target=self._run, name="shadow-reads", daemon=True)
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

    def _run(self) -> None:
        k, p = self.plan.analysis.top_k, self.plan.analysis.rbo_p
        while not self._stop.is_set():
            try:
                q, legacy = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                sample = shadow_sample(q, legacy, self.memoryos, self.legacy, k, p)
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

    def readiness(self, drift_max: float | None = None):
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


class Gateway:
    """The request logic, independent of HTTP: tests and the ASGI shell call the same methods."""

    def __init__(
        self,
        plan: Plan,
        phase: str | None,
        stack: str,
        legacy,
        memoryos,
        flags_path: Path | str,
        data_dir: Path,
        registry: CollectorRegistry | None = None,
        flag_poll_ms: int = 500,
        background: bool = True,
    ):
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
        )
        # phase None (a Deployment: no phase in its arguments): the phase the live flags carry
        self.phase = phase or self.flags.phase() or plan.phase_names[0]
        self.eff = plan.effective(self.phase)
        self.metrics.phase_info.labels(phase=self.phase, stack=stack).set(1)
        self._phase_shown = self.phase
        g = plan.gateway
        # One outbox per primary: inside a SQLite store's own file (the write and its mirror row commit
        # together), or a file of its own in data_dir for a remote store (enqueued before the write).
        retry = (g.outbox_max_attempts, g.outbox_backoff_s, g.outbox_backoff_max_s)
        self.outboxes = {
            n: Outbox(None, *retry, store=st.inner)
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
        gateway does it and not the mirror worker (see `stores.keep_wal`). One file at a time, spread
        over the interval, so that one file's checkpoint does not share the disk with the locked step
        (two fsyncs) of another. A store's full-text index is merged in the same round, just before
        (`SqliteStore.keep_index`)."""
        files = [(n, st.inner) if st.local else (f"outbox-{n}", self.outboxes[n]) for n, st in self.stores.items()]
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
    def _child_spec(self, retry: tuple) -> ChildSpec | None:
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

    def _on_event(self, event: tuple) -> None:
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

    def _candidate(self, fn, *args):
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

    def _primary(self, write_mode: str, op: str, namespace: str, id: str, call):
        """Run a write on the primary with its mirror row: in the same commit for a local store,
        enqueued just before the write for a remote one. `call(store, mirror_to)` does the write."""
        primary, mirror = WRITE_ROUTES[write_mode]
        store = self.stores[primary]
        if mirror and not store.local:
            self.outboxes[primary].enqueue(primary, mirror, namespace, id, op=op)
            return call(store, None)
        return call(store, mirror)

    def _observed(self, op: str, cohort: str, info: dict, fn):
        """Run fn() and count the request with the path that answered (info["path"] may change)."""
        started = time.perf_counter()
        try:
            result = fn()
        except StoreError:
            self._observe(op, info["path"], cohort, False, started)
            raise
        self._observe(op, info["path"], cohort, True, started)
        return result

    def _read(self, op: str, decision: Decision, info: dict, method: str, *args):
        """Read from MemoryOS within the budget when the treatment reads it, else (or on failure) legacy."""
        if decision.read_path == "memoryos":
            try:
                result = self._candidate(getattr(self.memoryos, method), *args)
                info["path"] = "memoryos"
                return result
            except StoreError as exc:
                reason = self._reason(exc)
                self.metrics.fallbacks.labels(op=op, reason=reason).inc()
                info.update(fallback=True, fallback_reason=reason)
        return getattr(self.legacy, method)(*args)

    # -- operations -------------------------------------------------------------------------------
    def remember(self, rec: Record, auto_version: bool, decision: Decision) -> tuple[Record, dict]:
        info = {
            "path": WRITE_ROUTES[decision.write_mode][0],
            "fallback": False,
            "cohort": decision.cohort,
            "phase": decision.phase,
            "write_mode": decision.write_mode,
        }
        put = lambda store, mirror_to: store.put(rec, auto_version, mirror_to=mirror_to)  # noqa: E731

        def write() -> Record:
            try:
                return self._primary(decision.write_mode, "put", rec.namespace, rec.id, put)
            except StoreError as exc:
                if info["path"] != "memoryos":
                    raise
                # MemoryOS-primary write failed: legacy takes it, the outbox copies it to MemoryOS later.
                self.metrics.fallbacks.labels(op="remember", reason=self._reason(exc)).inc()
                info.update(path="legacy", fallback=True, fallback_reason=self._reason(exc))
                return self._primary("mirror", "put", rec.namespace, rec.id, put)

        return self._observed("remember", decision.cohort, info, write), info

    def recall(self, q: RecallQuery, decision: Decision) -> tuple[list[Record], dict]:
        info = {
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

    def get(self, namespace: str, id: str, decision: Decision) -> tuple[Record | None, dict]:
        info = {"path": "legacy", "fallback": False, "cohort": decision.cohort, "phase": decision.phase}
        return self._observed(
            "get", decision.cohort, info, lambda: self._read("get", decision, info, "get", namespace, id)
        ), info

    def delete(self, namespace: str, id: str, decision: Decision) -> tuple[bool, dict]:
        info = {
            "path": WRITE_ROUTES[decision.write_mode][0],
            "fallback": False,
            "cohort": decision.cohort,
            "phase": decision.phase,
        }
        delete = lambda store, mirror_to: store.delete(namespace, id, mirror_to=mirror_to)  # noqa: E731
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

    def dead_letters(self) -> list[dict]:
        return [d for box in self.outboxes.values() for d in box.dead_letters()]

    def dead_letter_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for box in self.outboxes.values():
            for target, n in box.dead_letter_counts().items():
                out[target] = out.get(target, 0) + n
        return out

    def restart_drift_window(self) -> dict:
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

    def status(self) -> dict:
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
                store.inner.close()  # MemoryOS writes the heat of the last recalls
        if self.worker is not None:
            self.worker.stop()
        if self.background is not None:
            self.background.close()
        self.drift.close()
        self.flags.close()
        self.candidate_pool.shutdown(wait=False, cancel_futures=True)
