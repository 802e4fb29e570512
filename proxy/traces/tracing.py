"""The proxy's tracer (``--otel on``): OpenTelemetry's SDK, its OTLP exporter and sampler
configured by OpenTelemetry's own variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_PROTOCOL`` of ``http/protobuf`` or ``grpc``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``…), its spans sent in batches by a
thread of its own, never on a request's path."""

from __future__ import annotations

from typing import Mapping, Optional

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy.traces import conventions
from proxy.traces.trace import Trace

SERVICE = "oai-proxy"
PROTOCOLS = ("http/protobuf", "grpc")
_CONTEXT = TraceContextTextMapPropagator()
HEADERS = (("traceparent", "HTTP_TRACEPARENT"), ("tracestate", "HTTP_TRACESTATE"))


class Tracing:
    """Makes each request's :class:`Trace`; ``key_names``: whether a span may name the key
    (the operator's choice, ``--otel-key-names``); ``content``: whether the messages may go
    on the spans (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``)."""

    def __init__(
        self, provider: TracerProvider, key_names: bool = False, content: bool = False
    ) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("oai-proxy")
        self.key_names = key_names
        self.content = content

    @classmethod
    def exporting(cls, environ: Mapping[str, str], key_names: bool = False) -> "Tracing":
        """Spans exported over OTLP as ``environ``'s ``OTEL_*`` variables say."""
        provider = TracerProvider(resource=resource(environ))
        provider.add_span_processor(BatchSpanProcessor(exporter(environ)))
        return cls(provider, key_names, conventions.content_wanted(environ))

    def begin(self, environ: Mapping, method: str, route: Optional[str], path: str) -> Trace:
        """A request's trace, its own span begun: under the client's span where the request
        carries a ``traceparent`` (W3C Trace Context), else a trace of its own."""
        carrier = {name: environ[header] for name, header in HEADERS if environ.get(header)}
        attributes = conventions.request_attributes(method, route or "", path)
        return self._begun(carrier, conventions.request_name(method, route), SpanKind.SERVER,
                           attributes)  # fmt: skip

    def within(self, context: Mapping[str, str], endpoint: str, told: Mapping) -> Trace:
        """The trace of a request served in process at ``endpoint`` (a batch's line, a part
        of a live request), its span under the one whose W3C trace context is ``context``
        (none: a trace of its own); ``told``: what more its span says."""
        attributes = {**conventions.request_attributes("POST", endpoint, endpoint), **told}
        return self._begun(dict(context), conventions.request_name("POST", endpoint),
                           SpanKind.INTERNAL, attributes)  # fmt: skip

    def _begun(self, carrier: dict, name: str, kind: SpanKind, attributes: dict) -> Trace:
        parent = _CONTEXT.extract(carrier) if carrier else None
        root = self.tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        return Trace(self.tracer, root, self.content)


def resource(environ: Mapping[str, str]) -> Resource:
    """The proxy as its spans name it: ``oai-proxy`` unless ``OTEL_SERVICE_NAME`` (or
    ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``) names it otherwise."""
    told = Resource.create()  # OpenTelemetry's detectors: the variables among them
    named = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    return told if named else told.merge(Resource({SERVICE_NAME: SERVICE}))


def exporter(environ: Mapping[str, str]) -> SpanExporter:
    """OTLP's exporter of the protocol ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` (or
    ``OTEL_EXPORTER_OTLP_PROTOCOL``) names, ``http/protobuf`` by default; each reads its
    endpoint, headers and timeout from the variables itself."""
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
        )
    return OTLPSpanExporter()
