"""server.cpp's token routes on the OpenAI surface: ``/v1/tokenize`` and ``/v1/detokenize``."""

from __future__ import annotations

from typing import Any, Sequence

from proxy.core.fields import Fields
from proxy.dialects.openai.embeddings import is_token_list

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
