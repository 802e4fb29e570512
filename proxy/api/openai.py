"""The OpenAI endpoints, with and without the ``/v1`` prefix: parse, run, render."""
from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, g, jsonify

from proxy import generation
from proxy.api.body import read_json
from proxy.api.state import get_state, served_model
from proxy.api.streams import event_response, watched
from proxy.dialects import embeddings, openai, openai_chat, openai_completions, tokens
from proxy.dialects.openai import Choices
from proxy.fields import model_name

bp = Blueprint("openai", __name__)


@bp.post("/v1/chat/completions")
@bp.post("/chat/completions")
def create_chat_completion() -> Response:
    state = get_state()
    choices = _watched(openai_chat.parse(read_json(), max_choices=state.settings.max_choices))
    model = served_model(choices.requests[0].model)
    id = openai.new_id(openai_chat.ID_PREFIX)
    if choices.stream:
        stream = openai_chat.Stream(choices, id, model)
        return event_response(stream.render(
            generation.stream(state.router, choices.requests, choices.n)), stream)
    completions = generation.complete(state.router, choices.requests, choices.n)
    return jsonify(openai_chat.render(id, model, completions))


@bp.post("/v1/completions")
@bp.post("/completions")
def create_completion() -> Response:
    state = get_state()
    choices = _watched(openai_completions.parse(read_json(),
                                                max_choices=state.settings.max_choices))
    model = served_model(choices.requests[0].model)
    id = openai.new_id(openai_completions.ID_PREFIX)
    if choices.stream:
        stream = openai_completions.Stream(choices, id, model)
        return event_response(stream.render(
            generation.stream(state.router, choices.requests, choices.n)), stream)
    completions = generation.complete(state.router, choices.requests, choices.n)
    return jsonify(openai_completions.render(id, model, completions, choices))


@bp.post("/v1/embeddings")
@bp.post("/embeddings")
def create_embedding() -> Response:
    state = get_state()
    asked = embeddings.parse(read_json(), max_batch=state.settings.max_batch)
    texts = [item if isinstance(item, str) else state.router.detokenize(item, asked.model)
             for item in asked.inputs]
    result = state.router.embed(texts, asked.model)
    return jsonify(embeddings.render(result, served_model(asked.model), asked.encoding_format))


@bp.post("/v1/tokenize")
def tokenize() -> Response:
    """Token ids and their text pieces, for clients that count or inspect tokens."""
    body = read_json()
    text = tokens.parse_tokenize(body)
    return jsonify(tokens.render_tokens(get_state().router.tokenize(text, model_name(body))))


@bp.post("/v1/detokenize")
def detokenize() -> Response:
    body = read_json()
    ids = tokens.parse_detokenize(body)
    model = model_name(body)
    return jsonify(tokens.render_text(get_state().router.detokenize(ids, model) if ids else ""))


@bp.get("/v1/models")
@bp.get("/models")
def list_models() -> Response:
    """Every model, or with a key limited to some, those it may use."""
    router = get_state().router
    models = router.models()
    key = g.get("key")
    if key is not None and key.models:
        models = [model for model in models if router.model_label(model.id) in key.models]
    return jsonify(openai.model_list(models))


def _watched(choices: Choices) -> Choices:
    return replace(choices, requests=tuple(watched(request) for request in choices.requests))
