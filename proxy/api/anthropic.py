"""Anthropic's Messages API, with and without the ``/v1`` prefix (any query string, such as
Claude Code's ``?beta=true``): parse, run, render."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from proxy import generation
from proxy.api.body import read_json
from proxy.api.state import get_state, served_model
from proxy.api.streams import event_response, watched
from proxy.dialects import anthropic_messages as messages

bp = Blueprint("anthropic", __name__)


@bp.post("/v1/messages")
@bp.post("/messages")
def create_message() -> Response:
    ask = messages.parse(read_json())
    request = watched(ask.request)
    model = served_model(request.model)
    router = get_state().router
    id = messages.new_id()
    if ask.stream:
        stream = messages.Stream(ask, id, model)
        # pings while it waits for a slot, too: Anthropic's clients expect them
        response = event_response(stream.render(generation.stream(router, (request,),
                                                                  patient=True)), stream)
    else:
        (completion,) = generation.complete(router, (request,))
        response = jsonify(messages.render(ask, id, model, completion))
    response.headers.update(messages.left_out_header(ask))
    return response


@bp.post("/v1/messages/count_tokens")
@bp.post("/messages/count_tokens")
def count_tokens() -> Response:
    """The prompt's tokens, counted by the model's own tokenizer on the prompt the proxy
    would send."""
    ask = messages.parse(read_json(), counting=True)
    served_model(ask.request.model)
    return jsonify(messages.render_count(get_state().router.count_tokens(ask.request)))
