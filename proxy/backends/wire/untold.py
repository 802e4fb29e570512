"""The usage of an answer whose engine told none (a stream without its usage chunk, though
asked for one, as llama-cpp-python's server and others send them). Pure.

The prompt's tokens are the engine's own count where it gives one: the same request, whole
and one token long, answered with its usage (the prompt the engine has just read again, from
its cache where it keeps one). The answer's tokens are estimated: one per piece of a stream
(such engines send a token per event), else a token per four bytes of its text. Either way
the usage says it is ``estimated``; a prompt the engine would not count is estimated too, as
its texts' bytes over four and eight tokens around each message.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from proxy.core.types import ESTIMATED, GenerationRequest, Usage

BYTES_PER_TOKEN = 4
AROUND_MESSAGE = 8  # a chat template's marks around one message


def probe(body: dict) -> dict:
    """The whole, one-token request whose usage counts ``body``'s prompt."""
    asked = {name: value for name, value in body.items() if name != "max_completion_tokens"}
    asked.pop("stream_options", None)
    return {**asked, "stream": False, "max_tokens": 1}


def usage(
    request: GenerationRequest, prompt: Optional[int], text: str, pieces: Optional[int]
) -> Usage:
    """The usage of ``request``'s answer: ``prompt``, the engine's count (``None``: it gave
    none); ``pieces``, the stream's pieces of answer (``None``: a whole answer, ``text``)."""
    if prompt is None:
        prompt = prompt_estimate(request)
    made = pieces if pieces is not None else _bytes(text)
    return Usage(prompt, made, how=ESTIMATED)


def prompt_estimate(request: GenerationRequest) -> int:
    """A prompt's tokens, estimated from its texts."""
    if not request.is_chat:
        return _bytes(request.prompt or "")
    texts: Sequence[str] = [m.content or "" for m in request.messages]
    return sum(_bytes(text) for text in texts) + AROUND_MESSAGE * len(request.messages)


def _bytes(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)
