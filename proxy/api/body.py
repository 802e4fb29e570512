"""JSON both ways. The request body as JSON, read once, whatever the Content-Type says (curl
users forget it): every body that is not text a server can be given is a 400 naming why:
invalid JSON, invalid UTF-8, and text holding a lone UTF-16 surrogate, whether escaped
(``\\ud800``) or encoded as UTF-8 bytes of its own (``\\xed\\xa0\\x80``, as CESU-8 writes
surrogate pairs). So is a body that would cost too much: more arrays and objects than
``--max-containers`` (told before it is read), nested deeper than ``--max-nesting`` (so that
no later step has to fear a recursion). Answers are serialised by orjson: the standard
library's encoder is several times slower at every non-streamed answer.

A multipart form (an audio upload) is read as its fields would be as JSON: each name's
text, or its texts where it repeats; its files stay the view's (``request.files``).
"""

from __future__ import annotations

import json

import orjson
from flask import Response, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import ClientDisconnected

from proxy.api.call import UNREAD, this_call
from proxy.api.state import get_state
from proxy.core.bodyshape import parsed_body
from proxy.core.errors import RequestTimeoutError


def read_json() -> object:
    """The request body as JSON; read once per request (a key limited to some models has it
    read before the view)."""
    call = this_call()
    if call.body is UNREAD:
        call.body = _parse_body()
    return call.body


def _parse_body() -> object:
    if request.mimetype == "multipart/form-data":
        return form_fields()
    try:
        data = request.get_data(cache=False)
    except (ClientDisconnected, OSError):  # gunicorn gave up on a body that stopped coming
        raise RequestTimeoutError(
            "The request body stopped arriving before its "
            "Content-Length was reached (--client-timeout)."
        ) from None
    limits = get_state().settings.limits
    return parsed_body(data, limits.max_containers, limits.max_nesting)


def form_fields() -> dict:
    """A multipart form's fields: a name's text, or its texts where it repeats."""
    try:
        form = request.form
    except (ClientDisconnected, OSError):
        raise RequestTimeoutError(
            "The form stopped arriving before its Content-Length was reached (--client-timeout)."
        ) from None
    return {name: values[0] if len(values) == 1 else values for name, values in form.lists()}


class OrjsonProvider(JSONProvider):
    """Compact UTF-8, keys in the order they were built; ``json`` for what orjson refuses
    (integers wider than 64 bits)."""

    def dumps(self, obj, **kwargs) -> str:
        return self._encode(obj).decode()

    def loads(self, s, **kwargs):
        return json.loads(s, **kwargs)

    def response(self, *args, **kwargs) -> Response:
        """``jsonify``'s answer, its body encoded once, straight to bytes."""
        if args and kwargs:
            raise TypeError("jsonify() takes positional or keyword arguments, not both")
        obj = args[0] if len(args) == 1 else (args or kwargs)
        return self._app.response_class(self._encode(obj) + b"\n", mimetype="application/json")

    @staticmethod
    def _encode(obj) -> bytes:
        try:
            return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
