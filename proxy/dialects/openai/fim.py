"""Fill-in-the-middle in Mistral's API (``POST /v1/fim/completions``), as Codestral's clients
and Continue's OpenAI-compatible autocomplete send it: ``prompt`` is the text before the gap,
``suffix`` the text after it (none: the gap ends the file), and the answer is a chat
completion, whole or as its chunks."""

from __future__ import annotations

from typing import Any

from proxy.core.fields import Fields
from proxy.dialects.dialect import Ask, Limits
from proxy.dialects.openai import request
from proxy.dialects.openai.answer import error_body, headers  # noqa: F401 (the dialect's)
from proxy.dialects.openai.chat import new_id, render, stream  # noqa: F401 (the dialect's)
from proxy.dialects.openai.stream import patient  # noqa: F401 (the dialect's)

READ = request.READ | {"prompt", "suffix", "random_seed", "min_tokens"}


def parse(body: Any, limits: Limits) -> Ask:
    """Read a ``/v1/fim/completions`` body (Mistral's ``random_seed`` is the seed)."""
    fields = Fields(body)
    prompt = fields.string("prompt")
    if prompt is None:
        raise fields.fail("prompt", "is required: the text before the gap")
    if fields.raw("min_tokens") is not None:
        raise fields.fail("min_tokens", "is not supported by this server")
    seed = fields.integer("random_seed", 0, 2**32 - 1)
    if seed is not None and fields.raw("seed") is None:
        fields = Fields({**fields.body, "seed": seed})
    suffix = fields.string("suffix") or ""
    generation = request.generation_request(fields, limits, READ, prompt=prompt, suffix=suffix)
    return request.ask(fields, (generation,), limits)
