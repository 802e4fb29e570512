"""``POST /api/generate``, both ways: a :class:`~proxy.dialects.dialect.Dialect`.

``prompt`` with ``system`` goes through the model's chat template as one user turn;
``raw: true`` sends the prompt as it is; a ``suffix`` asks for the text between the prompt
and it (fill-in-the-middle, an editor's completion). ``format``, ``think``, ``options``, ``stream``
(true unless false) and ``keep_alive`` as for chat; ``template`` and ``context`` are accepted
and left aside. No prompt: the request only loads the model (with ``keep_alive: 0``,
unloads it).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from proxy.core.fields import Fields
from proxy.core.types import Message
from proxy.dialects.dialect import Ask, Limits
from proxy.dialects.ollama import answer, request
from proxy.dialects.ollama.answer import error_body, headers, new_id  # noqa: F401
from proxy.dialects.ollama.stream import OllamaStream, patient  # noqa: F401


def parse(body: Any, limits: Limits = Limits()) -> Ask:
    """Read an ``/api/generate`` body."""
    started = time.monotonic_ns()
    fields = Fields(body)
    prompt, system = fields.string("prompt") or "", fields.string("system") or ""
    raw = bool(fields.boolean("raw"))
    if raw and system:
        raise fields.fail("system", "cannot be given with raw: a raw prompt is sent as it is")
    if raw and fields.raw("images"):
        raise fields.fail("images", "cannot be given with raw: a raw prompt is sent as it is")
    suffix = fields.string("suffix") or None
    if suffix is not None:  # fill-in-the-middle: the model's own FIM prompt, never a template
        if system:
            raise fields.fail("system", "cannot be given with suffix: the gap is filled as it is")
        if fields.raw("images"):
            raise fields.fail("images", "cannot be given with suffix: the gap is filled as it is")
        return request.ask(fields, started, limits, prompt=prompt, suffix=suffix)
    if raw:
        return request.ask(fields, started, limits, prompt=prompt, load=not prompt)
    content = request.shown(fields, prompt, limits)
    turns = ((Message("system", system),) if system else ()) + (
        Message("user", content.text, images=tuple(content.images)),
    )
    return request.ask(fields, started, limits, messages=turns, load=not (prompt or content.images))


def render(ask: Ask, id: str, model: str, completions: Sequence) -> dict:
    return answer.whole(ask, ask.notes.name, "generate", completions)


def stream(ask: Ask, id: str, model: str) -> OllamaStream:
    return OllamaStream(ask, ask.notes.name, "generate")
