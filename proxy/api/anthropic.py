"""Anthropic's Messages API, with and without the ``/v1`` prefix (any query string, such as
Claude Code's ``?beta=true``)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from proxy.api.requestmodel import request_model
from proxy.api.serve import asked, serve, versioned
from proxy.api.state import Routes, get_state
from proxy.dialects import anthropic

bp = Blueprint("anthropic", __name__)
routes = Routes(
    bp, "Anthropic's Messages API (Claude Code), and its token count", anthropic.error_body
)


def passing() -> bool:
    """Whether the model is on a server that speaks Messages itself, which takes the body as
    it came (blocks the proxy cannot read, too)."""
    return request_model().api == "anthropic"


@versioned(bp, "/messages")
def create_message() -> Response:
    return serve(anthropic, asked(anthropic, passing=passing()))


@versioned(bp, "/messages/count_tokens")
def count_tokens() -> Response:
    """The prompt's tokens, counted by the model's own tokenizer on the prompt the proxy
    would send, or by the Messages API server a model is on."""
    ask = asked(anthropic, counting=True, passing=passing())
    return jsonify(anthropic.render_count(get_state().router.count_tokens(ask.request)))
