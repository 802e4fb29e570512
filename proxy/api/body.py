"""JSON both ways. The request body as JSON, read once, whatever the Content-Type says (curl
users forget it): every body that is not text a server can be given is a 400 naming why:
invalid JSON, invalid UTF-8, and text holding a lone UTF-16 surrogate, whether escaped
(``\\ud800``) or encoded as UTF-8 bytes of its own (``\\xed\\xa0\\x80``, as CESU-8 writes
surrogate pairs). So is a body that would cost too much: more arrays and objects than
``--max-containers`` (told before it is read), nested deeper than ``--max-nesting`` (so that
no later step has to fear a recursion). Answers are serialised by orjson: the standard
library's encoder is several times slower at every non-streamed answer.
"""

from __future__ import annotations

import json
import re

import orjson
from flask import Response, g, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import ClientDisconnected

from proxy.api.state import get_state
from proxy.core.bodyshape import brackets, lone_surrogate_at, more_containers, too_deep
from proxy.core.errors import InvalidRequestError, RequestTimeoutError

SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
UNREAD = object()  # a body not read yet (a body may be JSON null)


def read_json() -> object:
    """The request body as JSON; read once per request (a key limited to some models has it
    read before the view)."""
    call = g._get_current_object()  # read once: each read of ``g`` is a proxy lookup
    body = call.get("body", UNREAD)
    if body is UNREAD:
        body = call.body = _parse_body()
    return body


def _parse_body() -> object:
    try:
        data = request.get_data(cache=False)
    except (ClientDisconnected, OSError):  # gunicorn gave up on a body that stopped coming
        raise RequestTimeoutError(
            "The request body stopped arriving before its "
            "Content-Length was reached (--client-timeout)."
        ) from None
    limits = get_state().settings.limits
    opened = brackets(data)  # most bodies need no more than this count
    if opened > limits.max_containers and more_containers(data, limits.max_containers):
        raise InvalidRequestError(
            f"The body holds more than {limits.max_containers} arrays "
            f"and objects, which this server does not accept "
            f"(--max-containers)"
        )
    try:
        body = orjson.loads(data or b"null")
        # surrogates can only come from \uD800-\uDFFF escapes: most bodies need no walk
        suspect = SURROGATE_ESCAPE.search(data)
    except orjson.JSONDecodeError:
        body, suspect = _parse_unusual(data), True
    where = lone_surrogate_at(body) if suspect else None
    if where is not None:
        raise InvalidRequestError(
            f"'{where}' holds a lone UTF-16 surrogate (an unpaired "
            f"\\ud800-\\udfff escape, or its UTF-8 bytes), which is not "
            f"text",
            param=where,
        )
    if opened > limits.max_nesting:
        _check_nesting(body, limits.max_nesting)
    return body


def _check_nesting(body: object, most: int) -> None:
    """A body nested more than ``most`` levels deep is refused, naming the field."""
    deep = too_deep(body, most)
    if deep is not None:
        where = "The body" if deep == "body" else f"'{deep}'"
        raise InvalidRequestError(
            f"{where} nests arrays and objects more than {most} levels "
            f"deep, which this server does not accept (--max-nesting)",
            param=deep,
        )


def _parse_unusual(data: bytes) -> object:
    """What orjson refuses, read as the standard library reads it (NaN, integers wider than
    64 bits, UTF-16 and UTF-32, surrogates), else a 400 saying why. The standard library lets
    the UTF-8 bytes of a surrogate through as text: the caller looks for them."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidRequestError(f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequestError("The body is nested too deeply.") from None


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
