"""OpenAI's Responses API, with and without the ``/v1`` prefix, and the responses it keeps."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from proxy.access.keyring import ANONYMOUS
from proxy.access.stored import StoredResponse
from proxy.api.call import this_call
from proxy.api.serve import asked, serve, versioned
from proxy.api.state import Routes, get_state
from proxy.core.errors import InvalidRequestError
from proxy.dialects import responses
from proxy.dialects.dialect import Ask

bp = Blueprint("responses", __name__)
routes = Routes(bp, "OpenAI's Responses API (Codex CLI), with the responses it keeps")

MAX_ITEMS = 100  # input items listed in one page


@versioned(bp, "/responses")
def create_response() -> Response:
    state = get_state()
    ask, conversation = _with_history(asked(responses))
    ask = ask.amended(lambda request: request.in_conversation(conversation))
    notes = ask.notes
    owner = _owner()  # read now: a stream keeps its response after the request's context
    if not notes.store:
        return serve(responses, ask)
    id = responses.new_id()
    kept = responses.kept(notes.input_items)

    def stored(response: dict) -> StoredResponse:
        return StoredResponse(response, kept, notes.previous_response_id, conversation)

    state.responses.reserve(owner, id, stored({}))  # a store that cannot take it: 503 now
    return serve(
        responses, ask, kept=lambda response: state.responses.save(owner, stored(response)), id=id
    )


@versioned(bp, "/responses/input_tokens")
def count_input_tokens() -> Response:
    """The prompt's tokens, counted by the model's own tokenizer on the prompt the proxy
    would send."""
    ask, _ = _with_history(asked(responses, counting=True))
    return jsonify(responses.render_count(get_state().router.count_tokens(ask.request)))


@versioned(bp, "/responses/<id>", "GET")
def retrieve(id: str) -> Response:
    return jsonify(get_state().responses.get(_owner(), id).response)


@versioned(bp, "/responses/<id>", "DELETE")
def delete(id: str) -> Response:
    get_state().responses.delete(_owner(), id)
    return jsonify(responses.render_deleted(id))


@versioned(bp, "/responses/<id>/input_items", "GET")
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
            raise InvalidRequestError(
                f"'after' names {after!r}, which is not an input item of {id}", param="after"
            )
        items = items[ids.index(after) + 1 :]
    limit = request.args.get("limit", "20")
    if not (limit.isdigit() and 1 <= int(limit) <= MAX_ITEMS):
        raise InvalidRequestError(f"'limit' must be from 1 to {MAX_ITEMS}", param="limit")
    page = items[: int(limit)]
    return jsonify(responses.render_items(page, has_more=len(items) > len(page)))


def _with_history(ask: Ask) -> tuple:
    """``(ask, conversation)``: the request after the conversation it continues, and the
    name its turns are placed by (the client's ``prompt_cache_key``, else the one the
    conversation began with)."""
    notes = ask.notes
    if notes.previous_response_id is None:
        return ask, notes.prompt_cache_key
    items, previous = get_state().responses.history(_owner(), notes.previous_response_id)
    return (responses.continuing(ask, items), notes.prompt_cache_key or previous.conversation)


def _owner() -> str:
    """Whose responses these are: the key's owner, never its name (everyone's, when the
    proxy has no keys)."""
    key = this_call().key
    return key.owner if key is not None else ANONYMOUS
