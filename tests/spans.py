"""The spans an app traces (``otel="on"``), kept in memory by the SDK's own exporter, as the
API and trace tests read them."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proxy.traces import tracing


def kept_spans(monkeypatch) -> InMemorySpanExporter:
    """Where the apps made next export their spans: memory."""
    kept = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "exporter", lambda environ: kept)
    return kept


def finished(client, kept: InMemorySpanExporter) -> list:
    """The spans ``client``'s app has ended so far, in the order they ended."""
    client.application.extensions["proxy"].tracing.provider.force_flush()
    return list(kept.get_finished_spans())


def tree(spans: list) -> list:
    """Each span as ``(its name, its parent's name)`` (``None``: a root), in order."""
    by_id = {span.context.span_id: span.name for span in spans}
    return [(span.name, by_id.get(span.parent.span_id) if span.parent else None)
            for span in spans]  # fmt: skip
