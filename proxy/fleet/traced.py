"""Each attempt at a model's replica as a span of the request's trace, where ``--otel`` traces
requests: a client span in GenAI's conventions, failed where the attempt failed (the reason
the next replica or fallback was asked), with what its answer told; and before it, where a
model has replicas to choose from, the span of that choice."""

from __future__ import annotations

from proxy.core.caller import UNTRACED
from proxy.core.types import GenerationRequest
from proxy.fleet.replica import Replica
from proxy.fleet.servedmodel import ServedModel, counted_id
from proxy.traces import conventions


def attempt(request: GenerationRequest, model: ServedModel, replica: Replica):
    """The span of ``request``'s attempt at ``replica`` of ``model``, for a ``with`` block
    (none where the request is not traced)."""
    trace = request.caller.trace
    if trace is None:
        return UNTRACED
    spec = model.spec
    asked = counted_id(spec)
    attributes = conventions.attempt_attributes(request, spec.backend, asked, replica.name)
    if trace.content:
        attributes.update(conventions.said(request))
    name = conventions.attempt_name(attributes["gen_ai.operation.name"], asked)
    return trace.span(name, "client", attributes)


def answered(trace, model: ServedModel, usage, finish_reason, text: str = "") -> None:
    """What the attempt's answer told (``finish_reason``: ``None`` where it told none;
    ``text``: a whole answer's, on the span where the operator opted in to content)."""
    reasons = (finish_reason,) if finish_reason else ()
    trace.add(conventions.answered(counted_id(model.spec), usage, reasons))
    if trace.content and text:
        trace.add(conventions.wrote(text))


def placement(trace, candidates: int, continuing: bool):
    """The span of the choice of a replica among ``candidates``, for a ``with`` block."""
    return trace.span("placement", attributes=conventions.placement(candidates, continuing))


def placed(trace, replica: Replica) -> None:
    """The replica the placement chose, on its span."""
    trace.add(conventions.server(replica.name))
