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


@versioned(bp, "/messages")
def create_message() -> Response:
    """A model on a server that speaks Messages itself takes blocks the proxy cannot read."""
    passing = get_state().router.speaks(request_model().asked) == "anthropic"
    return serve(anthropic, asked(anthropic, passing=passing))


@versioned(bp, "/messages/count_tokens")
def count_tokens() -> Response:
    """The prompt's tokens, counted by the model's own tokenizer on the prompt the proxy
    would send."""
    ask = asked(anthropic, counting=True)
    return jsonify(anthropic.render_count(get_state().router.count_tokens(ask.request)))
