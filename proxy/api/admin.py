"""The admin API, behind ``--admin-key``: the models, their servers, loading and unloading,
usage, and the exchanges kept for the inspector."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request

from proxy.api.auth import require_key
from proxy.api.routes import Routes
from proxy.api.state import get_state
from proxy.core.errors import InvalidRequestError, NotFoundError

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


@bp.get("/exchanges")
def exchanges() -> Response:
    """The newest exchanges kept, each in brief (``?key=&model=&api=&status=&limit=``), and
    what the store holds."""
    capture = get_state().capture
    capture.flush()
    count, size = capture.store.totals()
    listed = capture.store.listed(_limit(), **_only())
    return jsonify({"exchanges": listed, "kept": count, "bytes": size, "dropped": capture.dropped})


@bp.get("/exchanges/<int:id>")
def exchange(id: int) -> Response:
    """One exchange whole: the request as sent, the answer, the facts."""
    capture = get_state().capture
    capture.flush()
    record = capture.store.get(id)
    if record is None:
        raise NotFoundError(f"No exchange {id} is kept here (it may have made room for newer ones)")
    return jsonify(record)


@bp.get("/exchanges.jsonl")
def export() -> Response:
    """The newest exchanges whole, a JSON object a line (for evals and fine-tuning sets)."""
    capture = get_state().capture
    capture.flush()
    store = capture.store
    lines = (
        json.dumps(store.get(brief["id"]), ensure_ascii=False) + "\n"
        for brief in store.listed(_limit(), **_only())
    )
    return Response(lines, mimetype="application/x-ndjson")


def _limit() -> int:
    return _number("limit", 100, 1, 1000)


def _only() -> dict:
    """The filters the query names."""
    only = {name: request.args.get(name) or None for name in ("key", "model", "api")}
    only["status"] = _number("status", None, 100, 599)
    return only


def _number(name: str, default, low: int, high: int):
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidRequestError(
            f"'{name}' must be a whole number from {low} to {high}", param=name
        )
    return int(text)
