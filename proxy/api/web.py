"""Routes for people and monitors rather than OpenAI clients."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from proxy.api.common import get_state

bp = Blueprint("web", __name__)

ROUTES = (
    ("POST", "/v1/chat/completions", "chat, streaming or not"),
    ("POST", "/v1/completions", "text completion from a raw prompt"),
    ("GET", "/v1/models", "the model served"),
    ("POST", "/v1/embeddings", "embedding vectors"),
    ("POST", "/v1/tokenize", "token ids and pieces; /v1/detokenize turns ids back"),
    ("POST", "/chat", "GLM API chat; /chat-stream streams it"),
    ("POST", "/tokenize", "GLM API tokens"),
    ("POST", "/embedding", "GLM API embeddings"),
    ("GET", "/health", "200 when the backend is ready, 503 when not"),
)


@bp.get("/")
def index() -> str:
    """A page for people: is it up, what does it serve, how to call it. Public, like /health."""
    state = get_state()
    return render_template("index.html", health=state.backend.health(), routes=ROUTES,
                           key_required=bool(state.settings.api_key), base_url=request.host_url)


@bp.get("/health")
def health() -> Response:
    """200 when the upstream answers and is ready, 503 otherwise; never needs a key."""
    report = get_state().backend.health()
    body = {"status": "ok" if report.ok else "unavailable", "backend": report.backend,
            **report.detail}
    response = jsonify(body)
    response.status_code = 200 if report.ok else 503
    return response
