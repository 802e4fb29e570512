"""The OpenAI endpoints, with and without the ``/v1`` prefix."""
from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, g, jsonify

from proxy import builders, generation, schemas
from proxy.api.common import (configured_models, event_response, get_state, read_json,
                              served_model, watched)
from proxy.schemas import Choices

bp = Blueprint("openai", __name__)


@bp.post("/v1/chat/completions")
@bp.post("/chat/completions")
def create_chat_completion() -> Response:
    state = get_state()
    choices = watched_choices(schemas.parse_chat(read_json(),
                                                 max_choices=state.settings.max_choices))
    model = served_model(choices.requests[0].model)
    if choices.stream:
        events = generation.chat_events(state.backend, choices, builders.new_id("chatcmpl"), model)
        return event_response(events, choices.requests[0].model)
    completions = generation.complete_all(state.backend, choices)
    return jsonify(builders.chat_completion(builders.new_id("chatcmpl"), model, completions))


@bp.post("/v1/completions")
@bp.post("/completions")
def create_completion() -> Response:
    state = get_state()
    choices = watched_choices(schemas.parse_completion(read_json(),
                                                       max_choices=state.settings.max_choices))
    model = served_model(choices.requests[0].model)
    if choices.stream:
        events = generation.text_events(state.backend, choices, builders.new_id("cmpl"), model)
        return event_response(events, choices.requests[0].model)
    completions = generation.complete_all(state.backend, choices)
    prompts = [r.prompt for r in choices.requests]
    return jsonify(builders.text_completion(builders.new_id("cmpl"), model, completions,
                                            prompts, echo=choices.echo))


@bp.post("/v1/embeddings")
@bp.post("/embeddings")
def create_embedding() -> Response:
    state = get_state()
    asked = schemas.parse_embeddings(read_json(), max_batch=state.settings.max_batch)
    texts = [item if isinstance(item, str) else state.backend.detokenize(item, asked.model)
             for item in asked.inputs]
    result = state.backend.embed(texts, asked.model)
    model = served_model(asked.model)
    return jsonify(builders.embedding_list(result.vectors, model, result.prompt_tokens,
                                           asked.encoding_format))


@bp.post("/v1/tokenize")
def tokenize() -> Response:
    """Token ids and their text pieces, for clients that count or inspect tokens."""
    body = read_json()
    text = schemas.parse_text(body, "prompt", "content", "input")
    tokens = get_state().backend.tokenize(text, schemas.parse_model(body))
    return jsonify({"tokens": [token for token, _ in tokens],
                    "pieces": [piece for _, piece in tokens], "count": len(tokens)})


@bp.post("/v1/detokenize")
def detokenize() -> Response:
    body = read_json()
    tokens = schemas.parse_token_ids(body)
    model = schemas.parse_model(body)
    return jsonify({"prompt": get_state().backend.detokenize(tokens, model) if tokens else ""})


@bp.get("/v1/models")
@bp.get("/models")
def list_models() -> Response:
    """Every model, or with a key limited to some, those it may use."""
    models = configured_models()
    key = g.get("key")
    if key is not None and key.models:
        label = get_state().backend.model_label
        models = [model for model in models if label(model.id) in key.models]
    return jsonify(builders.model_list(models))


def watched_choices(choices: Choices) -> Choices:
    return replace(choices, requests=tuple(watched(request) for request in choices.requests))
