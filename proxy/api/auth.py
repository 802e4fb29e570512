"""API keys, their models and limits, and CORS: checked before any view runs.

A client presents its key as ``Authorization: Bearer <key>`` (OpenAI's clients) or as
``x-api-key: <key>`` (Anthropic's); the admin API and ``/metrics`` read their own keys the
same way.
"""

from __future__ import annotations

import hmac
from typing import Optional, Sequence

from flask import Flask, Response, request

from proxy.access.gate import MISSING_KEY, Access
from proxy.access.keyring import KeySpec
from proxy.api.call import Call, this_call
from proxy.api.kinds import kind_of
from proxy.api.requestmodel import request_model
from proxy.core.errors import AuthenticationError

# pages, their status and /health answer anyone, each showing a viewer what it may see
# (proxy.inspector.visibility); the playground asks for a key itself; /metrics checks its own
PUBLIC_PATHS = frozenset({"/health", "/", "/status", "/playground", "/metrics"})
ADMIN = "/admin/"  # its own key: proxy.api.admin checks it
PRIORITY = "HTTP_X_REQUEST_PRIORITY"  # X-Request-Priority, or the body's "priority" (LiteLLM's)


def unmodelled(path: str) -> bool:
    """Whether a POST to ``path`` names no model of its own (a file, a batch, predictions:
    each of its lines or instances is checked as it runs)."""
    return path.startswith(("/v1/files", "/v1/batches", "/v1/messages/batches", "/predict"))


def presented_key(environ: dict) -> Optional[bytes]:
    """The key a client presents, as bytes; ``None`` when it presents none.

    ``Authorization: Bearer <key>``: the scheme takes any case, as HTTP says, and one space;
    only HTTP's own optional whitespace (spaces and tabs) around the value is ignored, and
    anything else around the key (a second space, a non-breaking space) makes it another
    key. Without it, ``x-api-key: <key>``. The server hands header bytes over as latin-1
    text: the bytes themselves are compared. Read from the WSGI environ, as every header on
    a request's way is: werkzeug's ``headers.get`` raises and catches a ``KeyError`` for
    each header the client did not send.
    """
    authorization = environ.get("HTTP_AUTHORIZATION")
    if authorization is not None:
        scheme, _, token = authorization.strip(" \t").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return token.encode("latin-1", "replace")
    token = environ.get("HTTP_X_API_KEY", "").strip(" \t")
    return token.encode("latin-1", "replace") if token else None


def require_key(environ: dict, keys: Sequence[bytes]) -> None:
    """Accept a configured key only, comparing with every key in constant time."""
    offered = presented_key(environ)
    if offered is None:
        raise AuthenticationError(MISSING_KEY)
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(offered, key)
    if not matched:
        raise AuthenticationError("Incorrect API key provided.")


def admit(
    access: Access, call: Call, key: Optional[KeySpec], modelled: bool, view: Optional[str]
) -> None:
    """Let ``call`` in as ``key``'s (``None``: the proxy has none): the model it names
    checked against the key's where it names one (``modelled``), and what the ``view`` that
    serves it asks the model to make against the key's kinds; its budgets read (a spent
    one counts no request) and its minute's count taken; each refusal raised, in the API's
    shape. An HTTP request comes in here once its key is found; a batch's line, as its
    batch's key is now."""
    call.checked = True
    call.key = key
    if key is not None and modelled and (key.restricted or key.kinds):
        model = request_model()
        if key.restricted:
            access.check_model(key, model.asked, model.id)
        kind = kind_of(view)
        if kind is not None:
            access.check_kind(key, model.asked, model.id, kind)
    call.budget = access.check_budget(key)
    call.limit = access.admit(key)


def init_app(app: Flask, access: Access, cors_origins: Sequence[str]) -> None:
    """Install the key, model and rate checks and, when origins are configured, CORS headers."""
    origins = frozenset(cors_origins)

    @app.before_request
    def admit_request():
        asked = request._get_current_object()  # read once: each read of ``request`` is a lookup
        if asked.method == "OPTIONS":
            return _preflight(origins) if origins else None
        path = asked.path
        call = this_call()
        if path in PUBLIC_PATHS or path.startswith(ADMIN):
            return None
        call.checked = True  # a refused key's answer is an API answer too
        key = access.identify(presented_key(asked.environ))
        rule = asked.url_rule
        admit(access, call, key, asked.method == "POST" and not unmodelled(path),
              rule.endpoint if rule is not None else None)  # fmt: skip
        return None

    @app.after_request
    def add_limits(response: Response) -> Response:
        call = this_call()
        for told in (call.limit, call.budget):
            if told is not None:
                response.headers.update(told.headers())
        return response

    if origins:

        @app.after_request
        def add_cors(response: Response) -> Response:
            origin = _allowed_origin(origins)
            if origin:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Vary"] = "Origin"
            return response


def _allowed_origin(origins: frozenset) -> str:
    origin = request.environ.get("HTTP_ORIGIN", "")
    if "*" in origins:
        return "*"
    return origin if origin in origins else ""


def _preflight(origins: frozenset) -> Response:
    response = Response(status=204)
    origin = _allowed_origin(origins)
    if origin:
        response.headers.update(
            {
                "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": request.environ.get(
                    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "Authorization, Content-Type"
                ),
                "Access-Control-Max-Age": "600",
            }
        )
    return response
