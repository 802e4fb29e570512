"""What the views share: the app's state, the request body, the model named, event streams."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Optional

import orjson
from flask import Response, current_app, g, request
from werkzeug.exceptions import ClientDisconnected

from proxy import generation, sse
from proxy.api.disconnect import client_gone_probe
from proxy.backends import Backend
from proxy.config import Settings
from proxy.draining import Drain
from proxy.errors import InvalidRequestError, RequestTimeoutError
from proxy.ops.metrics import Metrics
from proxy.schemas import lone_surrogate_at
from proxy.types import GenerationRequest


SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
UNREAD = object()  # a body not read yet (a body may be JSON null)


@dataclass(frozen=True)
class ProxyState:
    settings: Settings
    backend: Backend
    metrics: Optional[Metrics]  # None: --metrics off
    drain: Drain = field(default_factory=Drain)


def get_state() -> ProxyState:
    return current_app.extensions["proxy"]


def read_json() -> object:
    """The request body as JSON, whatever the Content-Type says (curl users forget it).

    Read once per request: a key limited to some models has it read before the view.
    """
    call = g._get_current_object()  # read once: each read of ``g`` is a proxy lookup
    body = getattr(call, "body", UNREAD)
    if body is UNREAD:
        body = call.body = _parse_body()
    return body


def _parse_body() -> object:
    try:
        data = request.get_data(cache=False)
    except (ClientDisconnected, OSError):  # gunicorn gave up on a body that stopped coming
        raise RequestTimeoutError("The request body stopped arriving before its "
                                  "Content-Length was reached (--client-timeout).") from None
    try:
        body = orjson.loads(data or b"null")
    except orjson.JSONDecodeError:
        body = _parse_unusual(data)
    # surrogates can only come from \uD800-\uDFFF escapes: most bodies need no walk
    where = lone_surrogate_at(body) if SURROGATE_ESCAPE.search(data) else None
    if where is not None:
        raise InvalidRequestError(f"'{where}' holds a lone UTF-16 surrogate (an unpaired "
                                  f"\\ud800-\\udfff escape), which is not text", param=where)
    return body


def _parse_unusual(data: bytes) -> object:
    """What orjson refuses, read as the standard library reads it (NaN, integers wider than
    64 bits, UTF-16 and UTF-32, escaped lone surrogates), else a 400 saying why."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidRequestError(f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequestError("The body is nested too deeply.") from None


def watched(generation_request: GenerationRequest) -> GenerationRequest:
    """The request, able to tell whether its client is still there while it waits."""
    return generation_request.watched_by(client_gone_probe(request.environ))


def configured_models() -> list:
    return get_state().backend.models()


def served_model(requested: Optional[str]) -> str:
    """The model the client named, else the default model."""
    g.model = requested
    return requested or get_state().settings.model_name or configured_models()[0].id


def event_response(events, model: Optional[str]) -> Response:
    """Stream ``events``; a failure before the first one is an HTTP error, unless the
    model's server is starting and takes long enough that the client needs keep-alives."""
    state = get_state()
    started = (generation.primed_patiently(events) if state.backend.starting(model)
               else generation.primed(events))
    return Response(sse.event_stream(started, state.drain),
                    mimetype="text/event-stream", headers=sse.HEADERS)
