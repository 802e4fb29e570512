"""OpenAI's embeddings, and server.cpp's token routes on the OpenAI surface.

OpenAI embeddings (``POST /v1/embeddings``), both ways.

server.cpp's token routes on the OpenAI surface: ``/v1/tokenize`` and ``/v1/detokenize``.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from proxy.core.answers import Embeddings
from proxy.core.errors import InvalidRequestError
from proxy.core.fields import Fields
from proxy.dialects.dialect import Limits

# the fields of OpenAI's embeddings the proxy reads (``user`` names the client's end user, for
# the provider's own monitoring: nothing to do)
READ = frozenset({"input", "model", "encoding_format", "dimensions", "user"})


@dataclass(frozen=True)
class EmbeddingRequest:
    """Texts (or token-id lists) to embed, how many dimensions of each vector to give back
    (``None``: all) and how to encode them."""

    inputs: tuple
    model: Optional[str]
    encoding_format: str
    dimensions: Optional[int] = None


def parse(body: Any, limits: Limits) -> EmbeddingRequest:
    """Read a ``/v1/embeddings`` body: a string, strings, token ids or lists of token ids."""
    fields = Fields(body)
    raw = fields.raw("input")
    if isinstance(raw, str) or is_token_list(raw):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) or is_token_list(x) for x in raw):
        inputs = raw
    else:
        raise fields.fail(
            "input",
            "must be a string, a list of strings, a list of token "
            "ids or a list of such lists, and not empty",
        )
    if len(inputs) > limits.max_batch:
        raise fields.fail("input", f"may hold at most {limits.max_batch} items, got {len(inputs)}")
    if any(not item for item in inputs):
        raise fields.fail("input", "must not contain empty items")
    model = fields.string("model") or None
    encoding = fields.string("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise fields.fail("encoding_format", "must be float or base64")
    dimensions = fields.integer("dimensions", 1)
    for name, value in fields.body.items():  # once those read are known good
        if name not in READ and value is not None:
            raise fields.fail(name, "is not a field of OpenAI's embeddings the proxy serves")
    return EmbeddingRequest(tuple(inputs), model, encoding, dimensions)


def is_token_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value)
    )


def render(
    result: Embeddings, model: str, encoding_format: str = "float", dimensions: Optional[int] = None
) -> dict:
    """The OpenAI embeddings body, each vector cut to ``dimensions`` where asked (an
    ``InvalidRequestError`` naming it when the model's are fewer); base64 is little-endian
    float32, as the SDK decodes it."""
    if dimensions is not None:
        widest = min((len(vector) for vector in result.vectors), default=dimensions)
        if dimensions > widest:
            raise InvalidRequestError(
                f"'dimensions' must be at most {widest} for this model", param="dimensions"
            )
        result = result.unit(dimensions)

    def encode(vector: Sequence[float]):
        if encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        return list(vector)

    return {
        "object": "list",
        "model": model,
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v)}
            for i, v in enumerate(result.vectors)
        ],
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


TEXT_NAMES = ("prompt", "content", "input")  # what each client calls the text


def parse_tokenize(body: Any) -> str:
    """The text of a tokenize request, under whichever name the client uses."""
    fields = Fields(body)
    for name in TEXT_NAMES:
        if fields.raw(name) is not None:
            return fields.string(name)
    raise fields.fail(TEXT_NAMES[0], "is required")


def render_tokens(tokens: Sequence[tuple]) -> dict:
    return {
        "tokens": [token for token, _ in tokens],
        "pieces": [piece for _, piece in tokens],
        "count": len(tokens),
    }


def parse_detokenize(body: Any) -> list:
    fields = Fields(body)
    tokens = fields.raw("tokens")
    if not is_token_list(tokens) and tokens != []:
        raise fields.fail("tokens", "must be a list of token ids")
    return tokens


def render_text(text: str) -> dict:
    return {"prompt": text}
