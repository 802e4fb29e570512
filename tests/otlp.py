"""An OTLP receiver for the tests: it takes what an exporter sends, over HTTP (``POST
/v1/traces``, protobuf) or gRPC (OpenTelemetry's ``TraceService``), decodes the real protobuf
with ``opentelemetry-proto`` and keeps each span, as a trace's reader would see it."""

from __future__ import annotations

import http.server
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.polling import wait_for
from tests.processes import free_port

KINDS = {
    trace_pb2.Span.SPAN_KIND_SERVER: "server",
    trace_pb2.Span.SPAN_KIND_CLIENT: "client",
    trace_pb2.Span.SPAN_KIND_INTERNAL: "internal",
}


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as it arrived: ids in hex (``parent`` "" for a root), its attributes and its
    resource's, its events' names, whether it failed."""

    name: str
    kind: str
    trace: str
    id: str
    parent: str
    attributes: dict
    events: tuple
    failed: bool
    description: str
    resource: dict


def _value(value):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs) -> dict:
    return {pair.key: _value(pair.value) for pair in pairs}


class OtlpReceiver:
    """``with OtlpReceiver() as receiver``: an exporter sends to ``receiver.http`` (its
    endpoint for ``http/protobuf``) or ``receiver.grpc``; ``receiver.spans`` is all it got."""

    def __init__(self) -> None:
        self.spans: list = []
        self._lock = threading.Lock()
        self.http_port, self.grpc_port = free_port(), free_port()
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.grpc = f"http://127.0.0.1:{self.grpc_port}"

    def keep(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        got = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    got.append(
                        ReceivedSpan(
                            span.name,
                            KINDS.get(span.kind, "other"),
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            _attributes(span.attributes),
                            tuple(event.name for event in span.events),
                            span.status.code == trace_pb2.Status.STATUS_CODE_ERROR,
                            span.status.message,
                            resource,
                        )
                    )
        with self._lock:
            self.spans.extend(got)

    def trace(self, trace_id: str, root: str, timeout: float = 30.0) -> list:
        """The spans of ``trace_id`` once its span named ``root`` (the last to end) came."""
        wait_for(
            lambda: any(s.trace == trace_id and s.name == root for s in list(self.spans)),
            f"the span {root!r} of trace {trace_id} arriving",
            timeout,
        )
        return [span for span in list(self.spans) if span.trace == trace_id]

    def __enter__(self) -> "OtlpReceiver":
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.keep(request)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802 (the service's own name)
                receiver.keep(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", self.http_port), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._grpc)
        self._grpc.add_insecure_port(f"127.0.0.1:{self.grpc_port}")
        self._grpc.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(None)
