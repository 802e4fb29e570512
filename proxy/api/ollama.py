"""Ollama's own API, for the clients that speak only it: chat, generate and embeddings on the
same core as every route, and what those clients ask of the models before they pick one."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Optional

from flask import Blueprint, Response, g, jsonify

from proxy.access.gate import Access
from proxy.api.body import read_json
from proxy.api.model import routed_model
from proxy.api.routes import Routes
from proxy.api.serve import asked, serve
from proxy.api.state import get_state
from proxy.core.errors import InvalidRequestError, ModelNotFoundError
from proxy.core.router import ServerControl
from proxy.core.types import ModelInfo
from proxy.dialects.ollama import answer, catalog, chat, embed, generate
from proxy.dialects.ollama.request import OllamaNotes, unmanaged

bp = Blueprint("ollama", __name__)
routes = Routes(bp, "Ollama's API, for the clients and apps that speak only it", answer.error_body)


@bp.post("/api/chat")
def chat_view() -> Response:
    return _answer(chat, "chat")


@bp.post("/api/generate")
def generate_view() -> Response:
    return _answer(generate, "generate")


def _answer(dialect, kind: str) -> Response:
    ask = asked(dialect)
    if not Access.may_manage(g.get("key")):
        ask = replace(ask, notes=unmanaged(ask.notes))
    notes = ask.notes
    if notes.load:
        response = jsonify(_load(notes, kind))
        response.headers.update(dialect.headers(ask))
        return response
    return serve(dialect, ask, kept=_keeping(notes))


def _load(notes: OllamaNotes, kind: str) -> dict:
    """A request with nothing to answer: load the model's server (or, with ``keep_alive:
    0``, stop it), as Ollama's clients preload and unload models."""
    router = get_state().router
    router.model_id(notes.name)  # an unknown model is a 404 either way
    server = _server_of(notes.name)
    reason = "load"
    if server is not None and notes.keep_alive == 0:
        server.stop("unloaded by a client (keep_alive 0)")
        reason = "unload"
    elif server is not None:
        server.ensure()
        if notes.keep_alive is not None:
            server.keep_for(notes.keep_alive)
    body = answer.line(notes.name, kind, "", done=True)
    body["done_reason"] = reason
    return body


def _keeping(notes: OllamaNotes) -> Optional[Callable[[dict], None]]:
    """What to do with the model's server once the answer is whole: stop it
    (``keep_alive: 0``) or keep it as long as the client asked."""
    if notes.keep_alive is None:
        return None
    server = _server_of(notes.name)
    if server is None:
        return None
    if notes.keep_alive == 0:
        return lambda body: server.stop("unloaded by a client (keep_alive 0)")
    return lambda body: server.keep_for(notes.keep_alive)


def _server_of(name: str) -> Optional[ServerControl]:
    """The server the proxy runs for ``name``; ``None`` for a server run by someone else."""
    try:
        return get_state().router.server_of(name)
    except InvalidRequestError:
        return None


@bp.post("/api/embed")
def embed_view() -> Response:
    wanted = embed.parse_embed(read_json(), get_state().limits)
    result = get_state().router.embed(list(wanted.inputs), routed_model().asked)
    return jsonify(embed.render_embed(wanted, result))


@bp.post("/api/embeddings")
def embeddings_view() -> Response:
    wanted = embed.parse_embeddings(read_json())
    return jsonify(
        embed.render_embeddings(get_state().router.embed(list(wanted.inputs), routed_model().asked))
    )


@bp.route("/api/tags", methods=["GET", "HEAD"])
def tags() -> Response:
    return jsonify(catalog.tags(_models()))


@bp.post("/api/show")
def show() -> Response:
    name = catalog.shown_name(read_json())
    router = get_state().router
    model_id = router.model_id(name)
    models = _models()
    model = next((model for model in models if model.id == model_id), None)
    if model is None:  # a model the key may not use is as good as absent, word for word
        raise ModelNotFoundError(
            name, [model.id for model in models if "alias_of" not in model.meta]
        )
    return jsonify(catalog.show(model, name))


@bp.get("/api/ps")
def ps() -> Response:
    running = catalog.running(get_state().router.status(), time.time())
    return jsonify(catalog.ps(_models(), running))


@bp.route("/api/version", methods=["GET", "HEAD"])
def version() -> Response:
    return jsonify(catalog.version())


@bp.post("/api/<any(pull, push, create, copy):action>")
def manage(action: str) -> Response:
    raise _not_managed(action)


@bp.delete("/api/delete")
def delete() -> Response:
    raise _not_managed("delete")


def _not_managed(action: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{action} is not available here: this proxy serves the models "
        f"of its models file (GET /api/tags lists them)"
    )


def _models() -> list[ModelInfo]:
    """Every model the key may use, each with its card (its server asked first)."""
    router = get_state().router
    router.health()  # servers not yet reached are asked what they serve
    models = router.models()
    key = g.get("key")
    if key is not None and key.models:
        models = [model for model in models if router.model_label(model.id) in key.models]
    return models
