"""The GLM API of ChatGLM-6B deployments: ``/chat``, ``/chat-stream``, ``/tokenize``, ``/embedding``.

``/chat-stream`` answers with server-sent events: ``data: {"delta": "…"}`` for each piece,
then one ``data: {"content": <whole answer>, "prompt_tokens", "completion_tokens",
"total_tokens", "model", "object", "finish_reason"}``, then ``data: [DONE]``.
"""
from __future__ import annotations

from contextlib import closing
from typing import Iterator

from flask import Blueprint, Response, jsonify

from proxy import glm
from proxy.api.common import event_response, get_state, read_json, served_model, watched
from proxy.backends import Backend
from proxy.ops import measure
from proxy.schemas import parse_model
from proxy.types import GenerationRequest

bp = Blueprint("glm", __name__)


@bp.post("/chat")
def chat() -> Response:
    request = watched(glm.parse_chat(read_json()))
    completion = get_state().backend.complete(request)
    measure.generated(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    return jsonify(glm.chat_answer(completion, served_model(request.model)))


@bp.post("/chat-stream")
def chat_stream() -> Response:
    request = watched(glm.parse_chat(read_json()))
    return event_response(_events(get_state().backend, request, served_model(request.model)),
                          request.model)


@bp.post("/tokenize")
def tokenize() -> Response:
    body = read_json()
    text, max_length = glm.parse_tokenize(body)
    tokens = get_state().backend.tokenize(text, parse_model(body))[:max_length]
    return jsonify({"tokenIds": [token for token, _ in tokens],
                    "tokens": [piece for _, piece in tokens]})


@bp.post("/embedding")
def embedding() -> Response:
    state = get_state()
    body = read_json()
    texts = glm.parse_embedding(body, max_batch=state.settings.max_batch)
    model = parse_model(body)
    result = state.backend.embed(texts, model)
    return jsonify({"data": [list(vector) for vector in result.vectors],
                    "model": served_model(model), "object": "embedding"})


def _events(backend: Backend, request: GenerationRequest, model: str) -> Iterator[dict]:
    texts = []
    with closing(backend.stream(request)) as chunks:
        for chunk in chunks:
            if chunk.text:
                measure.first_token()
                texts.append(chunk.text)
                yield glm.stream_delta(chunk.text)
            if chunk.finish_reason:
                if chunk.usage is not None:
                    measure.generated(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                yield glm.stream_end("".join(texts), chunk.finish_reason, chunk.usage, model)

