"""A flagd stand-in for tests: flagd's gRPC evaluation service (flagd.evaluation.v2, the version the
provider speaks), answered by the real flagd evaluator of openfeature-provider-flagd in FILE mode
over a flag file, with the event stream flagd sends (provider_ready, then configuration_change
whenever the file changes).

The gateway's `--flagd HOST:PORT` (RPC mode, as with the OpenFeature Operator's sidecar) talks to it
exactly as to flagd: the wire protocol and the cache invalidation are real; only the server is ours
(no flagd binary can be installed here)."""

from __future__ import annotations

import itertools
import queue
import threading
from concurrent import futures
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2 as pb
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2_grpc as pb_grpc

_domains = itertools.count()


class FlagdStandIn(pb_grpc.ServiceServicer):
    def __init__(self, flag_file: Path, port: int):
        from openfeature import api
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType
        from openfeature.event import ProviderEvent

        self.provider = FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=str(flag_file), deadline_ms=100
        )
        domain = f"flagd-standin-{next(_domains)}"
        api.set_provider_and_wait(self.provider, domain=domain)
        api.get_client(domain=domain).add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, self._changed)
        self._subscribers: list[queue.Queue] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        pb_grpc.add_ServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def _changed(self, details) -> None:
        with self._lock:
            for q in self._subscribers:
                q.put(details.flags_changed or [])

    @staticmethod
    def _context(request):
        from openfeature.evaluation_context import EvaluationContext

        ctx = MessageToDict(request.context)
        return EvaluationContext(ctx.pop("targetingKey", None), ctx)

    def ResolveBoolean(self, request, context):
        d = self.provider.resolve_boolean_details(request.flag_key, False, self._context(request))
        return pb.ResolveBooleanResponse(value=d.value, reason=str(d.reason), variant=d.variant or "")

    def ResolveString(self, request, context):
        d = self.provider.resolve_string_details(request.flag_key, "", self._context(request))
        return pb.ResolveStringResponse(value=d.value, reason=str(d.reason), variant=d.variant or "")

    def EventStream(self, request, context):
        q: queue.Queue = queue.Queue()
        with self._lock:
            self._subscribers.append(q)
        try:
            yield pb.EventStreamResponse(type="provider_ready")
            while context.is_active():
                try:
                    changed = q.get(timeout=0.2)
                except queue.Empty:
                    continue
                data = Struct()
                data.update({"flags": {k: {} for k in changed}})
                yield pb.EventStreamResponse(type="configuration_change", data=data)
        finally:
            with self._lock:
                self._subscribers.remove(q)

    def stop(self) -> None:
        self.server.stop(0)
        self.provider.shutdown()
