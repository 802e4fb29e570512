"""Embeddings as OpenAI's API asks for them (``POST /embeddings``: the model, the inputs,
floats) and answers them (``data``, one vector per input by ``index``; ``usage``). Pure.

The vectors are asked for as floats; one a server sends in base64 anyway (little-endian
float32, as OpenAI's base64 is) is read all the same. The tokens the inputs took are the
upstream's own count: the proxy has no tokenizer of its model.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Sequence

from proxy.core.answers import Embeddings
from proxy.core.errors import UpstreamError


def body(inputs: Sequence[str], model: str) -> dict:
    return {"model": model, "input": list(inputs), "encoding_format": "float"}


def embeddings(answer: object, count: int, label: str, path: str) -> Embeddings:
    """The answer of ``label`` at ``path``, checked: a vector of numbers for each of
    ``count`` inputs."""
    data = answer.get("data") if isinstance(answer, dict) else None
    try:
        vectors = sorted((int(item["index"]), _vector(item["embedding"])) for item in data)
    except (TypeError, KeyError, ValueError):
        raise UpstreamError(f"{label} answered {path} without a vector for each input") from None
    if [index for index, _ in vectors] != list(range(count)):
        raise UpstreamError(f"{label} answered {path} with vectors for other inputs")
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
    return Embeddings(
        tuple(vector for _, vector in vectors),
        tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else 0,
    )


def _vector(value: object) -> list:
    """A vector of floats, from a list of numbers or base64; ``ValueError`` for any other."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("not base64") from None
        if not raw or len(raw) % 4:
            raise ValueError("not float32s")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(value, list) or not value or not all(type(x) in (float, int) for x in value):
        raise ValueError("not a vector")
    return value
