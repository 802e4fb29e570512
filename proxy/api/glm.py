"""The GLM API of ChatGLM-6B deployments: ``/chat``, ``/chat-stream``, ``/tokenize``,
``/embedding``."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, jsonify

from proxy.api import native
from proxy.api.body import read_json
from proxy.api.requestmodel import answer_name
from proxy.api.serve import asked, caller, embed_texts, serve
from proxy.api.state import Routes, get_state
from proxy.core.fields import asked_model
from proxy.dialects import glm

bp = Blueprint("glm", __name__)
routes = Routes(bp, "The GLM API of ChatGLM-6B deployments")


@bp.post("/chat")
def chat() -> Response:
    return serve(glm, asked(glm))


@bp.post("/chat-stream")
def chat_stream() -> Response:
    return serve(glm, replace(asked(glm), stream=True))


@bp.post("/tokenize")
def tokenize() -> Response:
    """GLM's body names a ``prompt``; llama.cpp's own, a ``content``, goes to the model's
    server.cpp."""
    body = read_json()
    if isinstance(body, dict) and "content" in body and "prompt" not in body:
        return native.passed("/tokenize", body)
    text, max_length = glm.parse_tokenize(body)
    return jsonify(
        glm.render_tokens(
            get_state().router.tokenize(text, asked_model(body), caller())[:max_length]
        )
    )


@bp.post("/embedding")
def embedding() -> Response:
    state = get_state()
    body = read_json()
    texts = glm.parse_embedding(body, state.limits)
    model = asked_model(body)
    return jsonify(glm.render_embedding(embed_texts(texts, model), answer_name()))
