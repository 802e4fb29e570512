"""A request served in process, without HTTP: a batch request, as a live request of its key
would be served (its grants, limits, budgets, fair turns, usage and the inspector all apply),
at the lowest priority whatever it asks.

The runner makes its :class:`~proxy.api.call.Call` itself, from the batch's key and the
request's body, and the view of its endpoint serves it as it serves an HTTP request's: in
the app's context, over no connection, with no key's secret and no key looked up by name.
Its answer ends as every answer does (:func:`proxy.api.observe.finish`)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, NamedTuple, Optional

from flask import Flask, g

from proxy.access.keyring import KeySpec
from proxy.api.auth import admit
from proxy.api.call import Call
from proxy.api.errors import error_response
from proxy.api.observe import Arrival, finish
from proxy.api.state import get_state
from proxy.ops.measure import Measure
from proxy.ops.modelside import ModelSide


class InProcessAnswer(NamedTuple):
    """An answer served in process: its status and its JSON body (``None``: it had none)."""

    status: int
    body: object


def serve_in_process(
    app: Flask,
    key: Optional[KeySpec],
    endpoint: str,
    body: dict,
    size: int,
    charge: str,
    *,
    lowest: bool = True,
    trace_context: Mapping[str, str] = MappingProxyType({}),
    attributes: Mapping = MappingProxyType({}),
) -> InProcessAnswer:
    """Serve ``body`` (``size`` bytes as its batch's file wrote it) at ``endpoint`` (a path
    of the app's, such as ``/v1/chat/completions``) as ``key``'s (``None``: the proxy has
    none); ``charge``: the id its charge is kept under, so that a request asked again
    counts once; ``lowest``: it waits last (a batch's), else at its key's priority (a part
    of a live request); ``trace_context``: the W3C trace context of the span its own goes
    under, where ``--otel`` traces requests (a batch's line: the request that made the
    batch; a part: its live request), and ``attributes``, what more its span says."""
    with app.app_context():
        state = get_state()
        capture = state.capture
        side = ModelSide() if capture is not None and capture.armed() else None
        tracing = state.tracing
        trace = None if tracing is None else tracing.within(trace_context, endpoint, attributes)
        call = g.call = Call(Measure(), side, body=body, charge=charge, lowest=lowest, trace=trace)
        view, _ = app.url_map.bind("").match(endpoint, "POST")
        api = view.partition(".")[0]
        try:
            admit(state.access, call, key, modelled=True, view=view)
            response = app.view_functions[view]()
        except Exception as exc:  # noqa: BLE001 - every failure is an answer in its API's shape
            response = error_response(exc, api)
        arrival = Arrival(endpoint, api, "POST", endpoint, None, size)
        response = finish(state, call, response, arrival)
        try:
            return InProcessAnswer(response.status_code, response.get_json(silent=True))
        finally:
            response.close()  # as a server closes a sent answer: its charge is settled
