"""JSON answers through orjson: ``jsonify`` serialises every non-streamed answer, and the
standard library's encoder is several times slower at it."""
from __future__ import annotations

import json

import orjson
from flask.json.provider import JSONProvider


class OrjsonProvider(JSONProvider):
    """Compact UTF-8, keys in the order they were built; ``json`` for what orjson refuses
    (integers wider than 64 bits)."""

    def dumps(self, obj, **kwargs) -> str:
        try:
            return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), **kwargs)

    def loads(self, s, **kwargs):
        return json.loads(s, **kwargs)
