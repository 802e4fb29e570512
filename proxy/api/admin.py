"""The admin API, behind ``--admin-key``: the models, their servers, loading and unloading."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from proxy.api.auth import require_key
from proxy.api.routes import Routes
from proxy.api.state import get_state
from proxy.core.errors import NotFoundError

bp = Blueprint("admin", __name__, url_prefix="/admin")
routes = Routes(bp, "The admin API, behind the admin key: models, servers, usage, logs")

MAX_LOG_LINES = 2000
DEFAULT_LOG_LINES = 100


@bp.before_request
def require_admin_key() -> None:
    key = get_state().settings.access.admin_key
    if not key:
        raise NotFoundError("The admin API is off; start the proxy with --admin-key.")
    require_key(request.headers, (key.encode("utf-8"),))


@bp.get("/models")
def models() -> Response:
    """Every model with its replicas, and for servers the proxy runs, their state."""
    return jsonify({"models": get_state().router.status()})


@bp.post("/models/<name>/load")
def load(name: str) -> Response:
    server = get_state().router.server_of(name)
    server.ensure()
    return jsonify(server.snapshot())


@bp.post("/models/<name>/unload")
def unload(name: str) -> Response:
    server = get_state().router.server_of(name)
    server.stop("unloaded through the admin API")
    return jsonify(server.snapshot())


@bp.get("/usage")
def usage() -> Response:
    """Requests, tokens and errors per key and model, from every process, to the second."""
    return jsonify({"usage": get_state().access.usage.totals()})


@bp.get("/models/<name>/log")
def log(name: str) -> Response:
    """The last lines of the server's output (``?lines=N``, default 100)."""
    lines = request.args.get("lines", "")
    count = min(int(lines), MAX_LOG_LINES) if lines.isdigit() else DEFAULT_LOG_LINES
    return Response(
        get_state().router.server_of(name).log_tail(count) + "\n", mimetype="text/plain"
    )
