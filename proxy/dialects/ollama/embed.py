"""``POST /api/embed`` (``input``: a string or strings; vectors of unit length, cut to
``dimensions`` when asked) and the older ``POST /api/embeddings`` (``prompt``: one vector as
the server gives it), both ways."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from proxy.core.answers import Embeddings
from proxy.core.fields import Fields
from proxy.dialects.dialect import Limits
from proxy.dialects.ollama import request


@dataclass(frozen=True)
class EmbedRequest:
    """Texts to embed, for the model as the client named it."""

    name: str
    inputs: tuple
    started: int  # time.monotonic_ns() when the request was read
    dimensions: Optional[int] = None
    keep_alive: Optional[float] = None


def parse_embed(body: Any, limits: Limits = Limits()) -> EmbedRequest:
    started = time.monotonic_ns()
    fields = Fields(body)
    name = request.model(fields)
    raw = fields.raw("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not all(isinstance(item, str) for item in inputs):
        raise fields.fail("input", "must be a string or a list of strings")
    if len(inputs) > limits.max_batch:
        raise fields.fail("input", f"may hold at most {limits.max_batch} items, got {len(inputs)}")
    if any(not item for item in inputs):
        raise fields.fail("input", "must not contain empty strings")
    fields.boolean("truncate")  # the server cuts nothing: a text too long is its error
    return EmbedRequest(
        name, tuple(inputs), started, fields.integer("dimensions", 1), request.keep_alive(fields)
    )


def parse_embeddings(body: Any) -> EmbedRequest:
    started = time.monotonic_ns()
    fields = Fields(body)
    name = request.model(fields)
    prompt = fields.string("prompt")
    if not prompt:
        raise fields.fail("prompt", "is required")
    return EmbedRequest(name, (prompt,), started, keep_alive=request.keep_alive(fields))


def render_embed(wanted: EmbedRequest, result: Embeddings) -> dict:
    vectors = [list(vector) for vector in result.unit(wanted.dimensions).vectors]
    return {
        "model": wanted.name,
        "embeddings": vectors,
        "total_duration": time.monotonic_ns() - wanted.started,
        "load_duration": 0,
        "prompt_eval_count": result.prompt_tokens,
    }


def render_embeddings(result: Embeddings) -> dict:
    return {"embedding": list(result.vectors[0])}
