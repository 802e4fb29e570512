"""Watching the proxy work: every request measured and counted, and ``GET /metrics``.

Each answer carries ``x-oai-proxy-overhead-ms``: the proxy's own time, upstream waits left
out. A streamed answer's header can only count up to its first event; the metric counts the
whole stream.
"""
from __future__ import annotations

from time import perf_counter
from typing import Optional

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


def init_app(app: Flask, figures: Optional[Metrics], access: Access) -> None:
    """Measure every request, from before the key check to the last byte it makes; count an
    API request's usage against its key."""

    @app.before_request
    def begin() -> None:
        g.measure = measure.start()

    @app.after_request
    def end(response: Response) -> Response:
        spent = g.get("measure")
        if spent is None:  # a request refused before its measure began
            return response
        spent.pause()
        response.headers[OVERHEAD_HEADER] = f"{spent.overhead * 1000:.3f}"
        if response.is_streamed:
            response.response = measure.timed(response.response, spent)
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        model = get_state().backend.model_label(g.get("model"))
        status = response.status_code
        api = "key" in g  # the key check ran: an API route, not a page or a probe
        key = g.get("key")

        def done() -> None:
            if figures is not None:
                figures.answered(route, model, status, perf_counter() - spent.began, spent,
                                 key.name if key else "")
            if api:
                access.finished(key, model, status, spent.prompt_tokens, spent.completion_tokens)

        response.call_on_close(done)
        return response
