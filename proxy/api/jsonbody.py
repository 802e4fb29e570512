"""JSON answers through orjson: ``jsonify`` serialises every non-streamed answer, and the
standard library's encoder is several times slower at it."""

from __future__ import annotations

import json

import orjson
from flask import Response
from flask.json.provider import JSONProvider


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
