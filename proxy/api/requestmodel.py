"""The model a request names, resolved once per request (:class:`Target`): what the key check,
the hosted tools, the budget's hold, the answer, metrics and usage all read, and the fleet
serves."""

from __future__ import annotations

from typing import Optional

from flask import request

from proxy.api.body import read_json
from proxy.api.call import UNREAD, this_call
from proxy.api.state import get_state
from proxy.core.errors import InvalidRequestError
from proxy.core.fields import asked_model
from proxy.core.target import Target

BODIED = frozenset({"POST", "PUT", "PATCH"})


def request_model() -> Target:
    """The request's model, read from its body (``model``, or Ollama's ``name``) and resolved
    the first time it is asked for; a body that is not JSON, or a model that is not a
    string, is a 400 in the client's shape."""
    call = this_call()
    if call.target is None:
        bodied = call.body is not UNREAD or request.method in BODIED  # a line has its body
        asked = asked_model(read_json()) if bodied else None
        call.target = get_state().router.resolve(asked)
    return call.target


def request_model_if_read() -> Optional[Target]:
    """The request's model once its body has been read (a page, a body refused before it was
    read, or one whose model is not a string has none): what metrics and usage count a
    request under, whichever view read it."""
    call = this_call()
    model = call.target
    if model is None and call.body is not UNREAD:
        try:
            model = request_model()
        except InvalidRequestError:
            return None
    return model


def answer_name() -> str:
    """The model an answer names: the one asked for, else the default model's name."""
    target = request_model()
    if target.asked:
        return target.asked
    state = get_state()
    return state.settings.models.model_name or state.router.listed_id(target)
