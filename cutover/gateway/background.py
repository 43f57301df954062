"""The gateway's background work in a process of its own: the mirror worker (draining the outboxes)
and the shadow reads (MemoryOS answers compared with legacy's, for drift).

Why a process: in the gateway's own process this work competes with the requests for the GIL, and a
thread that holds it makes a request wait (up to the 5 ms switch interval) however idle the cores
are. In a child process it competes only for CPU, and at a lower priority: the process at nice 10,
the shadow reads at SCHED_IDLE (they run on idle CPU only; when there is none for long, the bounded
queue fills and samples are dropped and counted; the shadow thread takes no lock a request needs: it
only reads MemoryOS), and the mirror worker reads and prepares at SCHED_IDLE too but writes (each
transaction) at nice 10, so it never sits on a lock a request waits for while the machine is busy.
The child does not checkpoint: the gateway does, under its writer locks (`store.sqlite.keep_wal`). Under
load the kernel serves the requests first and the outbox lags a little, measured by outbox depth
and age, which is what the outbox is for. A process that may not leave SCHED_IDLE once in it
(unprivileged, RLIMIT_NICE 0: the usual container) keeps its mirror worker at nice 10 throughout.

The child opens the same stores (the SQLite files, or the remote services) itself. The outboxes live
in SQLite, so nothing is lost if either process dies: the child exits when its parent does, and the
next gateway's child drains what is left. Faults injected through the admin API are sent to the
child, so a MemoryOS outage stops its copies and its shadow reads too.

Messages, parent -> child: ("shadow", query, legacy's answer as (id, content key) pairs) on the shadow
queue; ("faults", store, state, n) and ("stop",) on the control queue, which a thread at normal
priority serves. Child -> parent: ("drift", parity drift, jaccard, rbo distance) (see
`cutover.gateway.shadow`), ("shadow_error",), ("mirror_failure", target,
reason), ("copied", n), ("ack", n) once fault n applies, ("done", outbox index, seqs): copied outbox
rows for the parent to delete. The parent deletes them on the connection and under the writer lock
its requests use, so on the normal path the child never writes the primary's file: a request's
write never meets a lock held by another process (which SQLite waits out in a busy handler that
sleeps 1, 2, 5 ms ...), it at most waits on the parent's own lock for a short delete.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cutover.gateway.outbox import MirrorWorker, Outbox
from cutover.gateway.shadow import shadow_sample
from cutover.store.faults import FaultState, FaultyStore
from cutover.store.legacy import LegacyStore
from cutover.store.memoryos import MemoryOSStore
from cutover.store.remote import HttpStore
from cutover.store.sqlite import SqliteStore
from cutover.store.uri import open_store

if TYPE_CHECKING:
    import multiprocessing.queues

NICE = 10
DONE_FLUSH_S = 0.5  # copied outbox rows are handed to the parent for deletion at most this often
BATCH_WAIT_S = 0.2  # after a part batch, the mirror worker waits this long for more (see MirrorWorker)

Message = tuple[Any, ...]  # a message between the processes: its kind first (see the module's docstring)


@dataclass(frozen=True)
class StoreSpec:
    """How to open a store again in another process."""

    kind: str  # legacy | memoryos
    uri: str  # sqlite:PATH or http(s)://...

    @classmethod
    def of(cls, store: object) -> StoreSpec:
        inner = store.inner if isinstance(store, FaultyStore) else store
        if isinstance(inner, SqliteStore):
            return cls("memoryos" if isinstance(inner, MemoryOSStore) else "legacy", f"sqlite:{inner.path}")
        if isinstance(inner, HttpStore):
            return cls(inner.name, inner.base_url)
        raise TypeError(f"cannot reopen a {type(inner).__name__} in another process")

    def open(self) -> HttpStore | LegacyStore | MemoryOSStore:
        return open_store(self.uri, self.kind, autocheckpoint=False)


@dataclass(frozen=True)
class OutboxSpec:
    path: str | None  # a file outbox, or None: the outbox inside the named store's file
    store: str | None
    retry: tuple[int, float, float]


@dataclass(frozen=True)
class ChildSpec:
    stores: dict[str, StoreSpec]
    outboxes: list[OutboxSpec]
    faults: dict[str, FaultState]
    top_k: int
    rbo_p: float
    settle_s: float


def _idle_priority() -> bool:
    """Run the calling thread only on idle CPU (SCHED_IDLE; Linux, per thread)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return True
    except (AttributeError, OSError):
        return False


@contextlib.contextmanager
def _normal_priority() -> Iterator[None]:
    """The mirror worker's writes at the process's normal priority (nice 10): a
    thread that runs only on idle CPU must not hold a lock a request may wait for (on a busy machine
    it could keep it for seconds). The reads and the preparing around them stay at idle priority."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        switched = True
    except (AttributeError, OSError):
        switched = False
    try:
        yield
    finally:
        if switched:
            _idle_priority()


def _can_leave_idle() -> bool:
    """Whether a thread of this process may go back from SCHED_IDLE to normal (an unprivileged one may
    not, unless RLIMIT_NICE allows it): tried in a thread of its own, which then ends."""
    result = []

    def probe() -> None:
        if _idle_priority():
            try:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
                result.append(True)
            except OSError:
                pass

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return bool(result)


def freeze_heap() -> None:
    """Move everything built so far out of the garbage collector's sight: modules, plan, flags,
    stores (about 120 000 objects in the gateway), kept for the life of the process. Full
    collections then walk only what was allocated since. Measured under load in the gateway: a full
    collection held the serving thread for 77-103 ms before (a p99 over a few thousand requests
    moves with one such stall), 8 ms after. Called once at start, by the gateway and by its child."""
    gc.collect()
    gc.freeze()


def _child(
    spec: ChildSpec,
    tasks: multiprocessing.queues.Queue[Message],
    control: multiprocessing.queues.Queue[Message],
    events: multiprocessing.queues.Queue[Message],
    parent_pid: int,
) -> None:
    try:
        os.nice(NICE)
    except OSError:
        pass
    stores = {name: FaultyStore(s.open()) for name, s in spec.stores.items()}
    for name, state in spec.faults.items():
        stores[name].set(**state)
    boxes = []
    for o in spec.outboxes:
        if o.path is None:
            assert o.store is not None  # an outbox without a file of its own lives in a named store
            boxes.append(Outbox(None, *o.retry, store=stores[o.store].sqlite))
        else:
            boxes.append(Outbox(Path(o.path), *o.retry, autocheckpoint=False))
    # where this process may switch back, the worker runs at idle priority and writes at normal priority
    priority: dict[str, Any] = dict(on_start=_idle_priority, write_scope=_normal_priority) if _can_leave_idle() else {}
    worker = MirrorWorker(
        boxes,
        stores,
        on_failure=lambda t, r: events.put(("mirror_failure", t, r)),
        settle_s=spec.settle_s,
        done_flush_s=DONE_FLUSH_S,
        batch_wait_s=BATCH_WAIT_S,
        on_done=lambda i, seqs: events.put(("done", i, seqs)),
        **priority,
    )
    copied = [0]
    stop = threading.Event()

    def report_copies() -> None:  # the worker counts; the parent shows the count in /admin/status
        while not worker.stop_event.wait(0.5):
            if worker.copied != copied[0]:
                events.put(("copied", worker.copied - copied[0]))
                copied[0] = worker.copied

    def control_loop() -> None:
        """Faults and stop, at the child's normal priority: a fault applies at once (and is
        acknowledged), whatever the shadow reads are waiting for."""
        while not stop.is_set():
            if os.getppid() != parent_pid:  # the gateway is gone (kill -9 included): so are we
                stop.set()
                return
            try:
                msg = control.get(timeout=0.2)
            except queue.Empty:
                continue
            if msg[0] == "stop":
                stop.set()
            elif msg[0] == "faults":
                stores[msg[1]].set(**msg[2])
                events.put(("ack", msg[3]))

    freeze_heap()
    worker.start()
    threading.Thread(target=report_copies, daemon=True).start()
    controller = threading.Thread(target=control_loop, daemon=True)
    controller.start()
    _idle_priority()  # this thread does the shadow reads: they run only on idle CPU
    try:
        while not stop.is_set():
            try:
                msg = tasks.get(timeout=0.2)
            except queue.Empty:
                continue
            _, q, legacy = msg
            try:
                sample = shadow_sample(q, legacy, stores["memoryos"], stores["legacy"], spec.top_k, spec.rbo_p)
            except Exception:
                events.put(("shadow_error",))
                continue
            events.put(("drift", *sample))
    finally:
        worker.stop()
        worker.join(5)
        if worker.copied != copied[0]:
            events.put(("copied", worker.copied - copied[0]))


class Background:
    """The parent's handle: start the child, send it work, apply what it reports."""

    def __init__(self, spec: ChildSpec, queue_size: int, on_event: Callable[[Message], None]) -> None:
        ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no copy of the server's threads
        self.tasks = ctx.Queue(maxsize=queue_size)  # shadow reads
        self.control = ctx.Queue()  # faults, stop
        self.events = ctx.Queue()
        self.on_event = on_event
        self._acks: dict[int, threading.Event] = {}
        self._seq = 0
        self.process = ctx.Process(
            target=_child,
            args=(spec, self.tasks, self.control, self.events, os.getpid()),
            name="cutover-background",
            daemon=True,
        )
        self.process.start()
        self._reader = threading.Thread(target=self._read, name="background-events", daemon=True)
        self._stop = threading.Event()
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                event = self.events.get(timeout=0.2)
            except (queue.Empty, OSError, EOFError):
                continue
            if event[0] == "ack":
                done = self._acks.pop(event[1], None)
                if done is not None:
                    done.set()
                continue
            self.on_event(event)

    def offer(self, message: Message) -> bool:
        """Send without waiting; False when the queue is full (the caller counts a drop)."""
        try:
            self.tasks.put_nowait(message)
            return True
        except queue.Full:
            return False

    def set_fault(self, store: str, state: FaultState, timeout_s: float = 5.0) -> bool:
        """Apply a fault in the child; returns once the child has it (False: no answer in time)."""
        self._seq += 1
        done = self._acks[self._seq] = threading.Event()
        self.control.put(("faults", store, state, self._seq))
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        try:
            self.control.put(("stop",), timeout=1)
        except (queue.Full, ValueError, OSError):
            pass
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
        time.sleep(0.3)  # the reader takes the child's last reports
        self._stop.set()
        self._reader.join(1)
