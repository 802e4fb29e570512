"""The OpenAI endpoints, with and without the ``/v1`` prefix."""
from __future__ import annotations

import json
from typing import Optional

from flask import Blueprint, Response, jsonify, request

from proxy import builders, generation, schemas, sse
from proxy.app import get_state
from proxy.errors import InvalidRequestError

bp = Blueprint("openai", __name__)


@bp.post("/v1/chat/completions")
@bp.post("/chat/completions")
def create_chat_completion() -> Response:
    state = get_state()
    choices = schemas.parse_chat(read_json(), max_choices=state.settings.max_choices)
    model = served_model(choices.requests[0].model)
    if choices.stream:
        events = generation.chat_events(state.backend, choices, builders.new_id("chatcmpl"), model)
        return event_response(events)
    completions = generation.complete_all(state.backend, choices)
    return jsonify(builders.chat_completion(builders.new_id("chatcmpl"), model, completions))


@bp.post("/v1/completions")
@bp.post("/completions")
def create_completion() -> Response:
    state = get_state()
    choices = schemas.parse_completion(read_json(), max_choices=state.settings.max_choices)
    model = served_model(choices.requests[0].model)
    if choices.stream:
        events = generation.text_events(state.backend, choices, builders.new_id("cmpl"), model)
        return event_response(events)
    completions = generation.complete_all(state.backend, choices)
    prompts = [r.prompt for r in choices.requests]
    return jsonify(builders.text_completion(builders.new_id("cmpl"), model, completions,
                                            prompts, echo=choices.echo))


@bp.post("/v1/embeddings")
@bp.post("/embeddings")
def create_embedding() -> Response:
    state = get_state()
    asked = schemas.parse_embeddings(read_json(), max_batch=state.settings.max_batch)
    texts = [item if isinstance(item, str) else state.backend.detokenize(item)
             for item in asked.inputs]
    result = state.backend.embed(texts)
    model = served_model(asked.model)
    return jsonify(builders.embedding_list(result.vectors, model, result.prompt_tokens,
                                           asked.encoding_format))


@bp.post("/v1/tokenize")
def tokenize() -> Response:
    """Token ids and their text pieces, for clients that count or inspect tokens."""
    text = schemas.parse_text(read_json(), "prompt", "content", "input")
    tokens = get_state().backend.tokenize(text)
    return jsonify({"tokens": [token for token, _ in tokens],
                    "pieces": [piece for _, piece in tokens], "count": len(tokens)})


@bp.post("/v1/detokenize")
def detokenize() -> Response:
    tokens = schemas.parse_token_ids(read_json())
    return jsonify({"prompt": get_state().backend.detokenize(tokens) if tokens else ""})


@bp.get("/v1/models")
@bp.get("/models")
def list_models() -> Response:
    return jsonify(builders.model_list(configured_models()))


def read_json() -> object:
    """The request body as JSON, whatever the Content-Type says (curl users forget it)."""
    try:
        return json.loads(request.get_data(cache=False) or b"null")
    except ValueError as exc:
        raise InvalidRequestError(f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequestError("The body is nested too deeply.") from None


def configured_models() -> list:
    return get_state().backend.models()


def served_model(requested: Optional[str]) -> str:
    """The model the client named, else the one this proxy serves."""
    return requested or get_state().settings.model_name or configured_models()[0].id


def event_response(events) -> Response:
    return Response(sse.event_stream(generation.primed(events)),
                    mimetype="text/event-stream", headers=sse.HEADERS)
