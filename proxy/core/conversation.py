"""What names a conversation from one turn to the next: its id, by which the fleet places its
turns on one replica and a server the proxy runs keeps its slot, and its thread, by which the
inspector links its turns."""

from __future__ import annotations

import hashlib

from proxy.core.types import GenerationRequest

RAW_PROMPT_PREFIX = 256  # characters of a raw prompt that name its conversation


def conversation_id(request: GenerationRequest) -> str:
    """What stays the same from one turn of a conversation to the next.

    The name a client gives its conversation (an agent's thread id) when it gives one. Else
    a chat is named by its messages up to and including the first user message: the system
    prompt alone is shared by many conversations, while the first question (a document, in
    retrieval setups) is what sets one apart. A raw prompt is named by its first characters,
    and a gap to fill by the first characters of its prompt as laid out: other files' chunks
    (an editor's, the same from one completion to the next), then the text before it.
    """
    if request.conversation:
        text = "\x1d" + request.conversation
    elif request.is_chat:
        opening = []
        for message in request.messages:
            opening.append(f"{message.role}\x1f{message.content}")
            if message.role == "user":
                break
        text = "\x1e".join(opening)
    else:
        nearby = "".join(f"{chunk.filename}\x1f{chunk.text}\x1e" for chunk in request.nearby)
        text = (nearby + request.prompt)[:RAW_PROMPT_PREFIX]
    return _digest(text)


def thread_id(request: GenerationRequest) -> str:
    """What links a conversation's turns in the inspector: as :func:`conversation_id`, but
    a chat by its first user message alone, so that a turn whose system prompt changed (a
    date, a list of files; the reason its cache missed) still follows the turn before."""
    if request.conversation or not request.is_chat:
        return conversation_id(request)
    first = next((m.content for m in request.messages if m.role == "user"), "")
    return _digest(f"user\x1f{first}")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
