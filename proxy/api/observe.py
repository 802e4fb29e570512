"""Watching the proxy work: every request measured and counted, and ``GET /metrics``.

Each answer carries ``x-oai-proxy-overhead-ms``: the proxy's own time, upstream waits left
out. A streamed answer's header can only count up to its first event; the metric counts the
whole stream.
"""
from __future__ import annotations

from time import perf_counter
from typing import Callable, Optional

from flask import Blueprint, Flask, Response, g, request

from proxy.access.gate import Access
from proxy.api.common import get_state
from proxy.auth import require_key
from proxy.errors import NotFoundError
from proxy.ops import measure
from proxy.ops.metrics import Metrics

bp = Blueprint("observe", __name__)
OVERHEAD_HEADER = "x-oai-proxy-overhead-ms"
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; behind --metrics-key (or the admin key) when one is set."""
    state = get_state()
    if state.metrics is None:
        raise NotFoundError("Metrics are off; start the proxy with --metrics on.")
    settings = state.settings
    if settings.metrics_key:
        keys = [key.encode("utf-8") for key in (settings.metrics_key, settings.admin_key) if key]
        require_key(request.headers.get("Authorization", ""), keys)
    return Response(state.metrics.scrape(), mimetype=None, content_type=EXPOSITION)


def init_app(app: Flask, figures: Optional[Metrics], access: Access,
             label: Callable[[Optional[str]], str]) -> None:
    """Measure every request, from before the key check to the last byte it makes; count an
    API request's usage against its key. ``label`` names the model a request asked for as
    metrics and usage name it."""

    @app.before_request
    def begin() -> None:  # the first hook: every answer, refusals too, is measured
        measure.start()

    @app.after_request
    def end(response: Response) -> Response:
        spent = measure.current()
        spent.pause()
        response.headers[OVERHEAD_HEADER] = f"{spent.overhead * 1000:.3f}"
        if response.is_streamed:
            response.response = measure.timed(response.response, spent)
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        call = g._get_current_object()  # read once: each read of ``g`` is a proxy lookup
        model = label(getattr(call, "model", None))
        status = response.status_code
        api = hasattr(call, "key")  # the key check ran: an API route, not a page or a probe
        key = getattr(call, "key", None)

        def done() -> None:
            if figures is not None:
                figures.answered(route, model, status, perf_counter() - spent.began, spent,
                                 key.name if key else "")
            if api:
                access.finished(key, model, status, spent.prompt_tokens, spent.completion_tokens)

        response.call_on_close(done)
        return response
