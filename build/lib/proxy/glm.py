"""The ChatGLM-6B "GLM API" shapes: ``{prompt, history}`` in, ``{content, …tokens}`` out.

Its clients send the latest user turn as ``prompt`` and earlier turns as
``history: [[user, assistant], …]``; the answer carries token counts at the top level.
"""
from __future__ import annotations

from typing import Any

from proxy.errors import InvalidRequestError
from proxy.schemas import Fields
from proxy.types import Completion, GenerationRequest, Message, Sampling, Usage


def parse_chat(body: Any) -> GenerationRequest:
    """Read a ``/chat`` or ``/chat-stream`` body into a chat request."""
    fields = Fields(body)
    prompt = fields.string("prompt")
    if not prompt:
        raise fields.fail("prompt", "is required")
    messages = []
    history = fields.raw("history") or []
    if not isinstance(history, list):
        raise fields.fail("history", "must be a list of [user, assistant] pairs")
    for i, turn in enumerate(history):
        if not (isinstance(turn, list) and len(turn) == 2
                and all(isinstance(text, str) for text in turn)):
            raise InvalidRequestError(f"'history[{i}]' must be a [user, assistant] pair of "
                                      f"strings", param=f"history[{i}]")
        messages += [Message("user", turn[0]), Message("assistant", turn[1])]
    messages.append(Message("user", prompt))
    return GenerationRequest(
        messages=tuple(messages),
        model=fields.string("model") or None,
        max_tokens=fields.integer("max_length", 1),
        sampling=Sampling(temperature=fields.number("temperature", 0, 2),
                          top_p=fields.number("top_p", 0, 1)),
    )


def chat_answer(completion: Completion, model: str) -> dict:
    return {"content": completion.text, **_counts(completion.usage), "model": model,
            "object": "chat.completion", "finish_reason": completion.finish_reason}


def stream_delta(text: str) -> dict:
    return {"delta": text, "object": "chat.completion.chunk"}


def stream_end(text: str, finish_reason: str, usage: Usage, model: str) -> dict:
    return {"content": text, **_counts(usage), "model": model, "object": "chat.completion",
            "finish_reason": finish_reason}


def parse_tokenize(body: Any) -> tuple:
    """``{prompt, max_length}``: the text and how many tokens to keep at most."""
    fields = Fields(body)
    prompt = fields.string("prompt")
    if prompt is None:
        raise fields.fail("prompt", "is required")
    return prompt, fields.integer("max_length", 1)


def parse_embedding(body: Any, *, max_batch: int) -> list:
    """``{prompt: [texts]}`` (a single string is accepted too)."""
    fields = Fields(body)
    prompt = fields.raw("prompt")
    texts = [prompt] if isinstance(prompt, str) else prompt
    if not (isinstance(texts, list) and texts and all(isinstance(t, str) and t for t in texts)):
        raise fields.fail("prompt", "must be a non-empty list of non-empty strings")
    if len(texts) > max_batch:
        raise fields.fail("prompt", f"may hold at most {max_batch} texts, got {len(texts)}")
    return texts


def _counts(usage: Usage) -> dict:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}
