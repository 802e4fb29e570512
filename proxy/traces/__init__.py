"""Traces: each request as a tree of spans, exported over OTLP by OpenTelemetry's own SDK to the
operator's tracing stack (``--otel on``; configured by OpenTelemetry's ``OTEL_*`` variables).

Off, nothing here is imported or called on a request's path: a request's trace is ``None``.
"""
