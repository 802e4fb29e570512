"""The GLM API of ChatGLM-6B deployments: ``/chat``, ``/chat-stream``, ``/tokenize``, ``/embedding``."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from proxy import generation
from proxy.api.body import read_json
from proxy.api.state import get_state, served_model
from proxy.api.streams import event_response, watched
from proxy.dialects import glm
from proxy.fields import model_name

bp = Blueprint("glm", __name__)


@bp.post("/chat")
def chat() -> Response:
    request = watched(glm.parse_chat(read_json()))
    (completion,) = generation.complete(get_state().router, (request,))
    return jsonify(glm.render_chat(completion, served_model(request.model)))


@bp.post("/chat-stream")
def chat_stream() -> Response:
    request = watched(glm.parse_chat(read_json()))
    stream = glm.Stream(served_model(request.model))
    return event_response(stream.render(generation.stream(get_state().router, (request,))),
                          stream)


@bp.post("/tokenize")
def tokenize() -> Response:
    body = read_json()
    text, max_length = glm.parse_tokenize(body)
    return jsonify(glm.render_tokens(
        get_state().router.tokenize(text, model_name(body))[:max_length]))


@bp.post("/embedding")
def embedding() -> Response:
    state = get_state()
    body = read_json()
    texts = glm.parse_embedding(body, max_batch=state.settings.max_batch)
    model = model_name(body)
    return jsonify(glm.render_embedding(state.router.embed(texts, model), served_model(model)))
