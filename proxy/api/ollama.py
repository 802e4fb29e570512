"""Ollama's own API, for the clients that speak only it: chat, generate and embeddings on the
same core as every route, and what those clients ask of the models before they pick one."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace
from typing import Callable, Iterator, Optional

from flask import Blueprint, Response, jsonify

from proxy.access.gate import Access
from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.requestmodel import request_model
from proxy.api.serve import asked, embed_texts, event_response, serve
from proxy.api.state import Routes, get_state
from proxy.core.answers import ModelInfo
from proxy.core.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProxyError,
)
from proxy.core.router import ModelPulls, ServerControl
from proxy.dialects.ollama import answer, catalog, chat, embed, generate
from proxy.dialects.ollama.request import OllamaNotes, unmanaged

logger = logging.getLogger(__name__)
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
    if not Access.may_manage(this_call().key):
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
    router.listed_id(router.resolve(notes.name))  # an unknown model is a 404 either way
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
    result = embed_texts(list(wanted.inputs), request_model().asked)
    return jsonify(embed.render_embed(wanted, result))


@bp.post("/api/embeddings")
def embeddings_view() -> Response:
    wanted = embed.parse_embeddings(read_json())
    result = embed_texts(list(wanted.inputs), request_model().asked)
    return jsonify(embed.render_embeddings(result))


@bp.route("/api/tags", methods=["GET", "HEAD"])
def tags() -> Response:
    return jsonify(catalog.tags(_models()))


@bp.post("/api/show")
def show() -> Response:
    name = catalog.shown_name(read_json())
    router = get_state().router
    model_id = router.listed_id(router.resolve(name))
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


@bp.post("/api/pull")
def pull_view() -> Response:
    wanted = catalog.parse_pull(read_json())
    pulls = _pulls()
    pulls.check(wanted.name)
    if not wanted.stream:
        pulls.pull(wanted.name, lambda *progress: None)
        return jsonify(catalog.SUCCESS)
    return event_response(_pulled(pulls, wanted.name), catalog.PullLines)


def _pulled(pulls: ModelPulls, name: str) -> Iterator[dict]:
    """A pull's progress, line by line. The pull runs in a thread of its own, and goes on if
    the client leaves: what it downloaded is in the cache for the next try."""
    heard: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            pulls.pull(name, lambda path, sha256, done, total: heard.put((sha256, done, total)))
            heard.put(None)
        except ProxyError as exc:
            heard.put(exc)
        except Exception as exc:  # the client hears that it failed, the log why
            logger.error("pulling %s failed: %s: %s", name, type(exc).__name__, exc)
            heard.put(ProxyError("the pull failed inside the proxy; see its log"))

    threading.Thread(target=run, name="pull", daemon=True).start()
    yield catalog.MANIFEST
    while (progress := heard.get()) is not None:
        if isinstance(progress, ProxyError):
            raise progress
        yield catalog.downloading(*progress)
    yield catalog.VERIFYING
    yield catalog.WRITING
    yield catalog.SUCCESS


@bp.delete("/api/delete")
def delete_view() -> Response:
    name = catalog.parse_delete(read_json())
    _pulls().delete(name)
    return Response(status=200)


def _pulls() -> ModelPulls:
    """What pulls and deletes models, for a client that may manage them (any client of a
    proxy without keys; with keys, a key with ``manage``, or the admin key)."""
    if not Access.may_manage(this_call().key):
        raise PermissionDeniedError(
            "pulling and deleting models needs a key that may manage them (manage = true in "
            "the keys file), or the admin key",
            code="manage_needed",
        )
    pulls = get_state().pulls
    if pulls is None:
        raise InvalidRequestError("this proxy does not pull models", param="model")
    return pulls


@bp.post("/api/<any(push, create, copy):action>")
def manage(action: str) -> Response:
    raise InvalidRequestError(
        f"{action} is not available here: this proxy serves the models of its models file "
        f"and those pulled from Hugging Face (POST /api/pull); GET /api/tags lists them"
    )


def _models() -> list[ModelInfo]:
    """Every model the key may use, each with its card (its server asked first)."""
    router = get_state().router
    router.check()  # servers not yet reached are asked what they serve
    models = router.models()
    key = this_call().key
    if key is not None and key.restricted:
        models = [model for model in models if key.may_use(router.resolve(model.id).id)]
    return models
