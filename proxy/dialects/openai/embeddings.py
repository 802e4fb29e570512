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
from proxy.core.fields import Fields, shown_name
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
    """Read a ``/v1/embeddings`` body: one prompt or a list of them (:func:`prompts`)."""
    fields = Fields(body)
    inputs = prompts(fields)
    if len(inputs) > limits.max_batch:
        raise fields.fail("input", f"may hold at most {limits.max_batch} items, got {len(inputs)}")
    model = fields.string("model") or None
    encoding = fields.string("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise fields.fail("encoding_format", "must be float or base64")
    dimensions = fields.integer("dimensions", 1)
    for name, value in fields.body.items():  # once those read are known good
        if name not in READ and value is not None:
            raise fields.fail(
                shown_name(name), "is not a field of OpenAI's embeddings the proxy serves"
            )
    return EmbeddingRequest(tuple(inputs), model, encoding, dimensions)


def prompts(fields: Fields) -> list:
    """The prompts of ``input``, as llama-server reads them: a text; token ids, alone or among
    texts (one prompt, a list); an object of llama-server's, its ``prompt_string`` or the
    text parts of its ``content``; or a list of such prompts. Each is a text or a list of
    texts and token ids."""
    raw = fields.raw("input")
    if isinstance(raw, list) and raw and not any(_is_id(item) for item in raw):
        return [_prompt(fields, f"input[{index}]", item) for index, item in enumerate(raw)]
    return [_prompt(fields, "input", raw)]


def _prompt(fields: Fields, name: str, value: Any):
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(x, str) or _is_id(x) for x in value):
        return value
    if isinstance(value, dict):
        return _object_prompt(Fields(value, name + "."))
    raise fields.fail(
        name,
        "must be a string, token ids (among strings, too), an object with prompt_string "
        "or content, or a list of such, and not empty",
    )


def _object_prompt(fields: Fields) -> str:
    """llama-server's prompt object: a ``prompt_string``, or text parts in ``content``;
    images in an embedding are not served."""
    if fields.raw("multimodal_data") is not None:
        raise fields.fail("multimodal_data", "is not served: embeddings are of text only")
    if fields.raw("prompt_string") is not None:
        return fields.text("prompt_string")
    parts = fields.objects("content")
    if not parts:
        raise fields.fail("content", "must be a list of text parts")
    texts = []
    for part in parts:
        if part.string("type") != "text":
            raise part.fail("type", "must be text: embeddings are of text only")
        texts.append(part.text("text"))
    return "".join(texts)


def runs(prompt) -> list:
    """A prompt as texts and runs of token ids, in order (each run a list, to detokenize)."""
    if isinstance(prompt, str):
        return [prompt]
    found: list = []
    for item in prompt:
        if isinstance(item, str):
            found.append(item)
        elif found and isinstance(found[-1], list):
            found[-1].append(item)
        else:
            found.append([item])
    return found


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
