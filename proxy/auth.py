"""API keys, their models and limits, and CORS: checked before any view runs."""
from __future__ import annotations

import hmac
from typing import Callable, Optional, Sequence

from flask import Flask, Response, g, request

from proxy.access.gate import Access
from proxy.api.common import read_json
from proxy.errors import AuthenticationError

# pages and their status are public like /health (the playground asks for a key itself);
# /metrics checks its own key
PUBLIC_PATHS = frozenset({"/health", "/", "/status", "/playground", "/metrics"})
ADMIN = "/admin/"  # its own key: proxy.api.admin checks it


def init_app(app: Flask, access: Access, label: Callable[[Optional[str]], str],
             cors_origins: Sequence[str]) -> None:
    """Install the key, model and rate checks and, when origins are configured, CORS headers.

    ``label`` turns the model a request names into the id the keys file lists.
    """
    origins = frozenset(cors_origins)

    @app.before_request
    def check_key():
        asked = request._get_current_object()  # read once: each read of ``request`` is a lookup
        if asked.method == "OPTIONS":
            return _preflight(origins) if origins else None
        path = asked.path
        if path in PUBLIC_PATHS or path.startswith(ADMIN):
            return None
        call = g._get_current_object()
        key = call.key = access.identify(asked.headers.get("Authorization", ""))
        if key is not None and key.models and asked.method == "POST":
            body = read_json()
            call.model = body.get("model") if isinstance(body, dict) else None
            access.check_model(key, call.model, label)
        call.limit = access.admit(key)
        return None

    @app.after_request
    def add_limits(response: Response) -> Response:
        decision = g.get("limit")
        if decision is not None:
            response.headers.update(decision.headers())
        return response

    if origins:
        @app.after_request
        def add_cors(response: Response) -> Response:
            origin = _allowed_origin(origins)
            if origin:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Vary"] = "Origin"
            return response


def require_key(header: str, keys: Sequence[bytes]) -> None:
    """Accept exactly ``Bearer <key>`` for a configured key, comparing in constant time.

    Only HTTP's own optional whitespace (spaces and tabs) around the value is ignored; the
    scheme takes any case, as HTTP says, and one space. Anything else around the key (a
    second space, a non-breaking space) makes it another key.
    """
    scheme, _, token = header.strip(" \t").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
    # the server hands header bytes over as latin-1 text: compare the bytes themselves
    offered = token.encode("latin-1", "replace")
    # compare against every key so the time taken does not tell which one nearly matched
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(offered, key)
    if not matched:
        raise AuthenticationError("Incorrect API key provided.")


def _allowed_origin(origins: frozenset) -> str:
    origin = request.headers.get("Origin", "")
    if "*" in origins:
        return "*"
    return origin if origin in origins else ""


def _preflight(origins: frozenset) -> Response:
    response = Response(status=204)
    origin = _allowed_origin(origins)
    if origin:
        response.headers.update({
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", "Authorization, Content-Type"),
            "Access-Control-Max-Age": "600",
        })
    return response
