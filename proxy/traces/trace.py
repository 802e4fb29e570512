"""One request's trace: its own span, and under it the spans of what it did, each opened
under the innermost one open in its thread. A request runs in its thread, a stream's pieces
included; what it runs in others (its choices at once, a hosted tool while a stream keeps
its client company) opens its spans under the innermost of the request's thread.

Spans are given their parent outright rather than through OpenTelemetry's context: a
stream's generator runs its pieces long after the view returned, where an ambient context
would be another request's or none.
"""

from __future__ import annotations

from threading import get_ident
from typing import Optional

from opentelemetry import trace as api
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy.traces import conventions

KINDS = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT, "server": SpanKind.SERVER}
_CONTEXT = TraceContextTextMapPropagator()


class Trace:
    """A request's spans: ``root``, its own, and those open under it in the request's
    thread (``open``, innermost last) and in others (``elsewhere``, by thread);
    ``content``: whether the operator opted in to messages on them."""

    __slots__ = ("tracer", "root", "open", "thread", "elsewhere", "ended", "content")

    def __init__(self, tracer, root, content: bool = False) -> None:
        self.tracer = tracer
        self.root = root
        self.open: list = [root]
        self.thread = get_ident()
        self.elsewhere: dict = {}
        self.ended = False
        self.content = content

    def stack(self) -> list:
        """The spans open in this thread, innermost last: in another than the request's,
        under the request thread's innermost as it was when the thread's first of them
        opened."""
        ident = get_ident()
        if ident == self.thread:
            return self.open
        found = self.elsewhere.get(ident)
        if found is None or len(found) == 1:  # none open there: under what is open now
            found = self.elsewhere[ident] = [self.open[-1]]
        return found

    def span(self, name: str, kind: str = "internal", attributes: Optional[dict] = None):
        """A span of ``name`` under the innermost open one, for a ``with`` block: it ends
        with the block, failed where the block raised."""
        return _Opened(self, name, KINDS[kind], attributes)

    def add(self, attributes: dict) -> None:
        """``attributes`` on the innermost open span."""
        self.stack()[-1].set_attributes(attributes)

    def fail(self, error: str, description: str) -> None:
        """The innermost open span failed, though nothing was raised (a tool's error, which
        the model reads)."""
        span = self.stack()[-1]
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, description))

    def event(self, name: str) -> None:
        """A moment in the innermost open span (the first token)."""
        self.stack()[-1].add_event(name)

    def headers(self) -> dict:
        """The W3C ``traceparent`` (and ``tracestate``) of the innermost open span: what goes
        to an upstream, so that its own spans join this trace."""
        carrier: dict = {}
        _CONTEXT.inject(carrier, context=api.set_span_in_context(self.stack()[-1]))
        return carrier

    def end(self, attributes: dict, failed: bool) -> None:
        """The request is answered (a stream: ended): its span ends, ``failed`` where its
        status is an error."""
        if self.ended:
            return
        self.ended = True
        root = self.root
        root.set_attributes(attributes)
        if failed:
            root.set_status(Status(StatusCode.ERROR))
        root.end()


class _Opened:
    """A span open for a ``with`` block (a class: several open on every request)."""

    __slots__ = ("trace", "name", "kind", "attributes", "span")

    def __init__(self, trace: Trace, name: str, kind, attributes: Optional[dict]) -> None:
        self.trace, self.name, self.kind, self.attributes = trace, name, kind, attributes

    def __enter__(self):
        trace = self.trace
        opened = trace.stack()
        parent = api.set_span_in_context(opened[-1])
        self.span = trace.tracer.start_span(
            self.name, context=parent, kind=self.kind, attributes=self.attributes
        )
        opened.append(self.span)
        return self.span

    def __exit__(self, kind, exc, traceback) -> None:
        span = self.span
        opened = self.trace.stack()
        if opened and opened[-1] is span:
            opened.pop()
        elif span in opened:
            opened.remove(span)
        if exc is not None and not isinstance(exc, GeneratorExit):
            error, description = conventions.failure(exc)
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, description))
        span.end()
