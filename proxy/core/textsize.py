"""A text's tokens told from its UTF-8 bytes alone, for the models whose tokenizer the proxy
does not have: at most its bytes (a token is at least one byte), at least its bytes over
:data:`MOST_BYTES_PER_TOKEN` (no tokenizer's tokens average near that many bytes over real
text: they average three to five), and about its bytes over :data:`BYTES_PER_TOKEN`, or over
:data:`JSON_BYTES_PER_TOKEN` for JSON, whose quotes, braces and colons are often tokens of
their own. And what of a request its model reads as the prompt, sized once
(:func:`prompt_size`): a hold bounds the prompt by it, and an untold usage estimates it. Pure.

The ratios are those SmolLM2's tokenizer (49,152 tokens) was measured at: 3.3 to 4.9 bytes
a token over chat messages, 3.5 over this project's Markdown and code, 4.7 over plain
English prose (the GPL's text); 3.4 to 3.7 over tools' definitions, 3.5 over JSON Schema's
metaschemas, but 2.1 to 2.5 over short arguments and results, all numbers and keys.
OpenAI's rule for English is four characters a token.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable

from proxy.core.types import GenerationRequest

MOST_BYTES_PER_TOKEN = 32  # no tokenizer's tokens average near this over real text
BYTES_PER_TOKEN = 4  # what a token of text takes, about
JSON_BYTES_PER_TOKEN = 3.5  # what a token of JSON takes, about
RESULTS = ("tool", "function")  # the roles of the messages that are tools' results


def size(text: str) -> int:
    """``text``'s UTF-8 bytes (a lone surrogate a client sent counts its three)."""
    return len(text.encode("utf-8", "surrogatepass"))


def fewest(size: int) -> int:
    """The fewest tokens ``size`` bytes of text take."""
    return size // MOST_BYTES_PER_TOKEN


def about(text: int, payload: int = 0) -> int:
    """About how many tokens ``text`` bytes of text and ``payload`` bytes of JSON take."""
    return -(-text // BYTES_PER_TOKEN) + math.ceil(payload / JSON_BYTES_PER_TOKEN)


@dataclass(frozen=True)
class PromptSize:
    """What a request's model reads as its prompt, by kind: the bytes of its texts and of its
    JSON (the tools' definitions, the calls' arguments, the answer's schema); what a chat
    template marks: its messages, those of them that are tools' results, the calls they
    make, whether it offers tools; and its images and sounds (a projector makes tokens of
    each)."""

    text: int = 0
    json: int = 0
    messages: int = 0
    results: int = 0
    calls: int = 0
    tools: bool = False
    images: int = 0
    sounds: int = 0

    @property
    def bytes(self) -> int:
        return self.text + self.json


def prompt_size(request: GenerationRequest) -> PromptSize:
    """The size of what ``request``'s model reads as its prompt: every message's text, name,
    thoughts sent back, calls' names and arguments; the tools, the answer's schema; a raw
    prompt with its fill-in-the-middle context; a body the proxy did not translate, whole."""
    texts = [request.prompt or "", request.suffix or "", request.cursor]
    texts += [chunk.text for chunk in request.nearby]
    payloads = []
    for message in request.messages:
        texts += [message.content, message.reasoning, message.name or ""]
        texts += [call.name for call in message.tool_calls]
        payloads += [call.arguments for call in message.tool_calls]
    if request.tools:
        payloads.append(json.dumps(request.tools))
    format_ = request.response_format
    if format_ is not None and format_.schema is not None:
        payloads.append(json.dumps(format_.schema))
    if not request.messages and request.prompt is None and request.verbatim is not None:
        payloads.append(json.dumps(request.verbatim.body))  # a body the proxy did not translate
    return PromptSize(
        text=total(texts),
        json=total(payloads),
        messages=len(request.messages),
        results=sum(message.role in RESULTS for message in request.messages),
        calls=sum(len(message.tool_calls) for message in request.messages),
        tools=bool(request.tools),
        images=len(request.images),
        sounds=len(request.sounds),
    )


def total(texts: Iterable[str]) -> int:
    """The UTF-8 bytes of ``texts``, together."""
    return sum(size(text) for text in texts)
