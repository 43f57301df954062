"""Which flags decide a request: the flag file (or a flagd daemon) evaluated per request through
the OpenFeature flagd provider, with the flag file checked before the provider sees it."""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cutover.flags.document import kill_write_mode
from cutover.flags.state import READ_PATHS, flag_doc_problem
from cutover.plan.errors import CutoverError
from cutover.plan.model import WRITE_ORDER, Plan

if TYPE_CHECKING:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagMetadata

log = logging.getLogger("cutover.gateway")

_domains = itertools.count()


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

    def __init__(
        self,
        plan: Plan,
        path: Path | str,
        poll_ms: int = 500,
        on_error: Callable[[str], None] | None = None,
        work_dir: Path | None = None,
        on_rollback: Callable[[str, str], None] | None = None,
    ) -> None:
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
        # FILE mode: a rollback the flags record (the controller's or a hand one), counted once when
        # the gateway first sees it: on_rollback(trigger, level)
        self.on_rollback = on_rollback or (lambda trigger, level: None)
        self._last_change: object = None
        self.config_error: str | None = None
        self.config_errors = self.evaluation_errors = 0
        self._last_log = -1e9
        self._defaults: Decision | None = None
        self._last_write = "legacy"
        self._raw = b""  # FILE mode: the version of the flag file seen last
        self._poll_s = poll_ms / 1000
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        files: tuple[Path, Path] | None = None  # FILE mode: the operator's file, the private copy in force
        rpc = flagd_address(path)
        if rpc is not None:
            # 2 s per evaluation call, per startup attempt and as the least reconnect backoff
            self.provider = FlagdProvider(resolver_type=ResolverType.RPC, host=rpc[0], port=rpc[1], deadline_ms=2000)
        else:
            source = Path(path)
            try:
                raw = source.read_bytes()
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
            files = (source, base / "flags.in-force.json")
            self._install(files[1], raw, doc)
            self.provider = FlagdProvider(
                resolver_type=ResolverType.FILE, offline_flag_source_path=str(files[1]), deadline_ms=poll_ms
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
        if files is not None:
            self._watcher = threading.Thread(target=self._watch, args=files, name="flag-file-watch", daemon=True)
            self._watcher.start()

    # -- the flag file: only good versions reach the provider -----------------------------------------
    def _install(self, effective: Path, raw: bytes, doc: dict[str, Any]) -> None:
        first = not self._raw
        self._raw = raw
        self._note_change(doc, count=not first)
        self._defaults = self._default_decision(doc)
        tmp = effective.with_suffix(".tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, effective)

    def _note_change(self, doc: dict[str, Any], count: bool) -> None:
        """A new change the flag set records (its changedAt): a rollback is counted, by trigger (the
        alert for the controller's, `manual` for a hand one) and level. The change in force when the
        gateway starts is not: it was counted before, or by the process that made it."""
        meta = doc.get("metadata")
        if not isinstance(meta, dict) or meta.get("changedAt") in (None, self._last_change):
            return
        self._last_change = meta.get("changedAt")
        level = meta.get("rollbackLevel")
        if count and isinstance(level, str) and level:
            by = meta.get("changedBy")
            trigger = str(meta.get("changeReason") or "unknown") if by == "controller" else str(by or "manual")
            self.on_rollback(trigger, level)

    def _default_decision(self, doc: dict[str, Any]) -> Decision:
        """What the flag set answers without targeting: used for a request whose evaluation fails."""
        keys, flags = self.plan.flag_keys, doc["flags"]

        def value(key: str) -> Any:  # a flag's default value, from the JSON flag document
            return flags[key]["variants"][flags[key]["defaultVariant"]]

        write = value(keys.write_mode)
        if value(keys.kill_switch):
            return Decision("control", "legacy", kill_write_mode(self.plan, write), True)
        return Decision("control", value(keys.read_path), write, False)

    def _watch(self, source: Path, effective: Path) -> None:
        while not self._watch_stop.wait(self._poll_s):
            why: str | None
            try:
                raw = source.read_bytes()
            except OSError as exc:
                raw, why = None, f"flag file unreadable: {exc.strerror}"
            if raw is not None and raw == self._raw:
                continue
            if raw is not None:
                doc, why = flag_doc_problem(self.plan, raw)
                if doc is not None:
                    self._install(effective, raw, doc)
                    if self.config_error is not None:
                        log.warning("flag file %s is good again: its flags are in force", source)
                    self.config_error = None
                    continue
                self._raw = raw  # counted once per bad version, not once per poll
            if why == self.config_error:
                continue
            self.config_error = why
            self.config_errors += 1
            self.on_error("invalid")
            self._log_limited(f"flag file {source} refused ({why}): the last good flag set stays in force")

    def _log_limited(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= self.LOG_EVERY_S:
            self._last_log = now
            log.error(message)

    def state(self) -> dict[str, bool | str | int | None]:
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
        if not isinstance(kill.value, bool) or read.value not in READ_PATHS or write.value not in WRITE_ORDER:
            raise ValueError(f"flag values out of range: {kill.value!r}, {read.value!r}, {write.value!r}")
        phase = self._phase(ctx, read.flag_metadata)
        if kill.value:
            return Decision("control", "legacy", kill_write_mode(self.plan, write.value), True, phase), variants
        cohort = read.variant if read.variant in ("control", "treatment") else "control"
        return Decision(cohort, read.value, write.value, False, phase), variants

    def _phase(self, ctx: EvaluationContext, metadata: FlagMetadata | None) -> str | None:
        """The flag-set metadata's `phase`, handed with the evaluation in FILE mode; else (RPC mode:
        a provider gets no metadata) the phase flag's value, one more evaluation; None when neither
        names a phase of the plan. Both are rendered from the same phase."""
        names = self.plan.phase_names
        value: object = (metadata or {}).get("phase")
        if value not in names:
            value = self.provider.resolve_string_details(self.plan.flag_keys.phase, "", ctx).value
        return value if isinstance(value, str) and value in names else None

    def phase(self) -> str | None:
        """The phase the live flags carry, or None when they carry none."""
        ctx = self._ctx("status-probe", {})
        details = self.provider.resolve_string_details(self.plan.flag_keys.read_path, "legacy", ctx)
        return self._phase(ctx, details.flag_metadata)

    def close(self) -> None:
        self._watch_stop.set()
        self.provider.shutdown()
