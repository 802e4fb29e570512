"""OpenAI's Responses API, with and without the ``/v1`` prefix, and the responses it keeps."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from proxy import generation
from proxy.access.gate import ANONYMOUS
from proxy.access.stored import StoredResponse
from proxy.api.body import read_json
from proxy.api.state import get_state, served_model
from proxy.api.streams import event_response, watched
from proxy.dialects import openai_responses as responses
from proxy.dialects.openai_responses import ResponsesAsk
from proxy.errors import InvalidRequestError

bp = Blueprint("responses", __name__)
MAX_ITEMS = 100  # input items listed in one page


@bp.post("/v1/responses")
@bp.post("/responses")
def create_response() -> Response:
    state = get_state()
    ask, conversation = _with_history(responses.parse(read_json()))
    asked = watched(ask.request).in_conversation(conversation)
    model = served_model(asked.model)
    id = responses.new_id("resp")
    owner = _owner()  # read now: a stream keeps its response after the request's context

    def keep(response: dict) -> None:
        if ask.store:
            state.responses.save(owner, StoredResponse(
                response, list(ask.input_items), ask.previous_response_id, conversation))

    if ask.stream:
        stream = responses.Stream(ask, id, model, finished=keep)
        answer = event_response(stream.render(generation.stream(state.router, (asked,))),
                                stream)
    else:
        (completion,) = generation.complete(state.router, (asked,))
        body = responses.render(ask, id, model, completion)
        keep(body)
        answer = jsonify(body)
    answer.headers.update(responses.left_out_header(ask))
    return answer


@bp.post("/v1/responses/input_tokens")
@bp.post("/responses/input_tokens")
def count_input_tokens() -> Response:
    """The prompt's tokens, counted by the model's own tokenizer on the prompt the proxy
    would send."""
    ask, _ = _with_history(responses.parse(read_json(), counting=True))
    served_model(ask.request.model)
    return jsonify(responses.render_count(get_state().router.count_tokens(ask.request)))


@bp.get("/v1/responses/<id>")
@bp.get("/responses/<id>")
def retrieve(id: str) -> Response:
    return jsonify(get_state().responses.get(_owner(), id).response)


@bp.delete("/v1/responses/<id>")
@bp.delete("/responses/<id>")
def delete(id: str) -> Response:
    get_state().responses.delete(_owner(), id)
    return jsonify(responses.render_deleted(id))


@bp.get("/v1/responses/<id>/input_items")
@bp.get("/responses/<id>/input_items")
def input_items(id: str) -> Response:
    """The response's input items, newest first (``order=asc``: oldest first), ``limit`` at
    a time, ``after`` the item named."""
    items = list(get_state().responses.get(_owner(), id).input_items)
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("'order' must be asc or desc", param="order")
    if order == "desc":
        items.reverse()
    after = request.args.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequestError(f"'after' names {after!r}, which is not an input item "
                                      f"of {id}", param="after")
        items = items[ids.index(after) + 1:]
    limit = request.args.get("limit", "20")
    if not (limit.isdigit() and 1 <= int(limit) <= MAX_ITEMS):
        raise InvalidRequestError(f"'limit' must be from 1 to {MAX_ITEMS}", param="limit")
    page = items[:int(limit)]
    return jsonify(responses.render_items(page, has_more=len(items) > len(page)))


def _with_history(ask: ResponsesAsk) -> tuple:
    """``(ask, conversation)``: the request after the conversation it continues, and the
    name its turns are placed by (the client's ``prompt_cache_key``, else the one the
    conversation began with)."""
    if ask.previous_response_id is None:
        return ask, ask.prompt_cache_key
    items, previous = get_state().responses.history(_owner(), ask.previous_response_id)
    return (responses.continuing(ask, items),
            ask.prompt_cache_key or previous.conversation)


def _owner() -> str:
    """Whose responses these are: the key's name (everyone's, when the proxy has no keys)."""
    key = g.get("key")
    return key.name if key is not None else ANONYMOUS
