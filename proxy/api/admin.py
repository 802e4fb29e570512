"""The admin API, behind ``--admin-key``: the models, their servers, loading and unloading,
usage, and the exchanges kept for the inspector (which a key kept with ``capture = true``
may read too, its own only), with the inspector's page."""

from __future__ import annotations

from typing import Optional

from flask import Blueprint, Response, jsonify, render_template, request

from proxy.access import spend
from proxy.access.keyring import described
from proxy.api.auth import presented_key, require_key
from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.serve import event_response
from proxy.api.state import Routes, get_state
from proxy.core.errors import InvalidRequestError, NotFoundError, ProxyError
from proxy.dialects.streaming import LinesOf
from proxy.inspector.divergence import divergence

bp = Blueprint("admin", __name__, url_prefix="/admin")
routes = Routes(bp, "The admin API, behind the admin key: models, servers, usage, logs")

MAX_LOG_LINES = 2000
DEFAULT_LOG_LINES = 100


INSPECTOR = frozenset({"admin.exchanges", "admin.exchange", "admin.export"})


@bp.before_request
def require_admin_key() -> None:
    """The admin key opens everything; on the inspector's routes a key that is kept opens
    its own exchanges (its call's ``viewer``), and its page opens to anyone (it asks for the
    key)."""
    state = get_state()
    call = this_call()
    if request.endpoint in INSPECTOR:
        if request.endpoint == "admin.exchanges" and _wants_page():
            return
        key = state.access.find(presented_key(request.environ))
        if key is not None and key.capture:
            call.viewer = key.owner
            return
    key = state.settings.access.admin_key
    if not key:
        raise NotFoundError("The admin API is off; start the proxy with --admin-key.")
    require_key(request.environ, (key.encode("utf-8"),))


def _wants_page() -> bool:
    """A browser asks for a page by name; API clients for JSON."""
    best = request.accept_mimetypes.best_match(("application/json", "text/html"))
    return best == "text/html"


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
    """Requests, tokens and errors per key and model, from every process, to the second, and
    what they cost where the model has a price."""
    state = get_state()
    return jsonify({"usage": spend.priced(state.access.usage(), state.router.prices())})


@bp.post("/reload")
def reload() -> Response:
    """Read the keys file and the models file again and serve what they say; a file that
    cannot be used is a 400 saying why, and nothing changes."""
    try:
        served = get_state().reloader.reload()
    except ValueError as exc:
        raise InvalidRequestError(f"nothing reloaded: {exc}") from None
    return jsonify(served)


@bp.get("/keys")
def keys() -> Response:
    """Every key (never its secret): what it may use, its share of the queue, its limits, and
    what it has left of its budgets, and what it spent on priced models."""
    state = get_state()
    access = state.access
    prices = state.router.prices()
    spent = spend.by_key(access.usage(), prices) if prices else None
    listed = []
    for key in access.keyring.keys:
        standing = access.standing(key)
        budgets = standing.described() if standing is not None else {}
        shown = {**described(key), "budgets": budgets}
        if spent is not None:
            shown["spend_usd"] = spent.get(key.name, 0.0)
        listed.append(shown)
    return jsonify({"keys": listed})


@bp.post("/keys")
def add_key() -> Response:
    """A key written into the keys file and accepted at once: the fields of a ``[[keys]]``
    table, ``key`` made when neither it nor ``key_env`` is given (shown this once)."""
    entry = read_json()
    if not isinstance(entry, dict):
        raise InvalidRequestError("the body must be a JSON object: a [[keys]] table's fields")
    try:
        written = get_state().reloader.add_key(entry)
    except ValueError as exc:
        raise InvalidRequestError(f"no key added: {exc}") from None
    return jsonify({"name": written.get("name"), "key": written.get("key")}), 201


@bp.delete("/keys/<name>")
def revoke_key(name: str) -> Response:
    """The key ``name`` taken out of the keys file and refused from its next request."""
    try:
        get_state().reloader.revoke_key(name)
    except KeyError:
        raise NotFoundError(f"the keys file has no key named {name!r}") from None
    except ValueError as exc:
        raise InvalidRequestError(f"the key was not revoked: {exc}") from None
    return jsonify({"revoked": name})


@bp.get("/models/<name>/log")
def log(name: str) -> Response:
    """The last lines of the server's output (``?lines=N``, default 100)."""
    lines = request.args.get("lines", "")
    count = min(int(lines), MAX_LOG_LINES) if lines.isdigit() else DEFAULT_LOG_LINES
    return Response(
        get_state().router.server_of(name).log_tail(count) + "\n", mimetype="text/plain"
    )


@bp.get("/exchanges")
def exchanges():
    """The newest exchanges kept, each in brief (``?key=&model=&api=&status=&conversation=
    &since=&until=&before=&limit=``), and what the store holds; a browser gets the
    inspector's page."""
    if _wants_page():
        return render_template("exchanges.html")
    capture = get_state().capture
    capture.flush()
    with capture.reading():
        count, size = capture.store.totals()
        listed = capture.store.listed(_limit(), **_only())
    return jsonify(
        {
            "exchanges": [_public(brief) for brief in listed],
            "kept": count,
            "bytes": size,
            "dropped": capture.dropped,
            "capturing": capture.armed(),
        }
    )


@bp.get("/exchanges/<int:id>")
def exchange(id: int) -> Response:
    """One exchange whole: the request as sent, what went upstream, the prompt the model
    saw and the text it wrote, the answer, the facts; and where its prompt parted from the
    cache its conversation's turn before left (``divergence``)."""
    capture = get_state().capture
    capture.flush()
    with capture.reading():
        record = _own(capture.store.get(id), id)
        before = capture.store.previous(record)
    if this_call().viewer is not None:  # a client: where the proxy's servers are is not its to know
        record.pop("replica", None)
    return jsonify(
        {
            **_public(record),
            "previous": before and before["id"],
            "divergence": _parted(before, record),
        }
    )


def _public(record: Optional[dict]) -> Optional[dict]:
    """An exchange as the admin API names its fields: its thread is ``conversation`` there,
    the name clients and the inspector's pages read."""
    if record is None:
        return None
    return {("conversation" if name == "thread" else name): value for name, value in record.items()}


def _own(record: Optional[dict], id: int) -> dict:
    """``record``, if it is there for the asking key to see."""
    viewer = this_call().viewer
    if record is None or (viewer is not None and record.get("owner") != viewer):
        raise NotFoundError(f"No exchange {id} is kept here (it may have made room for newer ones)")
    return record


def _parted(before: Optional[dict], record: dict) -> Optional[dict]:
    """Where ``record``'s prompt first differs from the cache ``before`` left: the
    character, the token (as the model's server counts the text before it), both sides."""
    if before is None or before.get("prompt") is None or record.get("prompt") is None:
        return None
    parted = divergence(before["prompt"], before.get("raw"), record["prompt"])
    return {
        "previous": before["id"],
        "character": parted.at,
        "token": _tokens(record["prompt"][: parted.at], record["model"]),
        "held_characters": parted.held,
        "reused_all": parted.reused_all,
        "in_answer": parted.in_answer,
        "shared": parted.shared,
        "before": parted.before,
        "now": parted.now,
        "evaluated_tokens": record.get("evaluated_tokens"),
    }


def _tokens(text: str, model: str) -> Optional[int]:
    """How many tokens ``text`` is to ``model`` (``None`` when its server cannot say now)."""
    try:
        return get_state().router.token_count(text, model) if text else 0
    except ProxyError:
        return None


@bp.get("/exchanges.jsonl")
def export() -> Response:
    """The newest exchanges whole, a JSON object a line (for evals and fine-tuning sets)."""
    capture = get_state().capture
    capture.flush()
    store = capture.store
    with capture.reading():  # a store that is down: 503 before the first line
        briefs = store.listed(_limit(), **_only())
    return event_response((_public(store.get(brief["id"])) for brief in briefs), LinesOf)


def _limit() -> int:
    return _number("limit", 100, 1, 1000)


def _only() -> dict:
    """The filters the query names (``conversation``: the thread); a kept key's own
    exchanges only, to that key."""
    only = {name: request.args.get(name) or None for name in ("key", "model", "api")}
    only["thread"] = request.args.get("conversation") or None
    only["status"] = _number("status", None, 100, 599)
    only["before"] = _number("before", None, 1, 2**62)
    for name in ("since", "until"):
        only[name] = _seconds(name)
    if this_call().viewer is not None:  # its own, whatever it names
        only["key"], only["owner"] = None, this_call().viewer
    return only


def _seconds(name: str) -> Optional[float]:
    text = request.args.get(name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidRequestError(f"'{name}' must be a time in unix seconds", param=name) from None


def _number(name: str, default, low: int, high: int):
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidRequestError(
            f"'{name}' must be a whole number from {low} to {high}", param=name
        )
    return int(text)
