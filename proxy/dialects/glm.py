"""The ChatGLM-6B "GLM API", both ways: ``{prompt, history}`` in, ``{content, …tokens}`` out.

Its clients send the latest user turn as ``prompt`` and earlier turns as
``history: [[user, assistant], …]``; the answer carries token counts at the top level.
``/chat-stream`` answers ``data: {"delta": "…"}`` for each piece, then one
``data: {"content": <whole answer>, …token counts, "finish_reason"}``, then ``data: [DONE]``.
Its chats are a :class:`~proxy.dialects.dialect.Dialect`, streamed by route, not by body.
"""

from __future__ import annotations

from typing import Any, Sequence

from proxy.core.answers import Completion, Embeddings, Usage
from proxy.core.errors import InvalidRequestError
from proxy.core.events import Finish, TextDelta, UsageReport, Waiting
from proxy.core.fields import Fields
from proxy.core.sse import COMMENT
from proxy.core.types import GenerationRequest, Message, Sampling
from proxy.dialects.dialect import Ask, Limits
from proxy.dialects.openai.answer import error_body, headers  # noqa: F401
from proxy.dialects.openai.stream import DataEvents, patient  # noqa: F401
from proxy.dialects.streaming import EventRenderer


def new_id() -> str:
    return ""  # GLM answers carry no id


def parse(body: Any, limits: Limits = Limits()) -> Ask:
    """Read a ``/chat`` or ``/chat-stream`` body into a chat request (the route says whether
    it streams)."""
    fields = Fields(body)
    prompt = fields.string("prompt")
    if not prompt:
        raise fields.fail("prompt", "is required")
    messages = []
    history = fields.raw("history") or []
    if not isinstance(history, list):
        raise fields.fail("history", "must be a list of [user, assistant] pairs")
    for i, turn in enumerate(history):
        if not (
            isinstance(turn, list)
            and len(turn) == 2
            and all(isinstance(text, str) for text in turn)
        ):
            raise InvalidRequestError(
                f"'history[{i}]' must be a [user, assistant] pair of strings", param=f"history[{i}]"
            )
        messages += [Message("user", turn[0]), Message("assistant", turn[1])]
    messages.append(Message("user", prompt))
    return Ask(
        (
            GenerationRequest(
                messages=tuple(messages),
                model=fields.string("model") or None,
                max_tokens=fields.integer("max_length", 1),
                sampling=Sampling(
                    temperature=fields.number("temperature", 0, 2),
                    top_p=fields.number("top_p", 0, 1),
                ),
            ),
        )
    )


def render(ask: Ask, id: str, model: str, completions: Sequence[Completion]) -> dict:
    (completion,) = completions
    return _end(completion.text, completion.finish_reason, completion.usage, model)


def stream(ask: Ask, id: str, model: str) -> "GlmStream":
    return GlmStream(model)


class GlmStream(EventRenderer, DataEvents):
    """``{"delta"}`` events, then the whole answer with its token counts."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.texts: list = []
        self.usage = Usage()

    def text(self, event: TextDelta, out: list) -> None:
        if event.text:
            self.texts.append(event.text)
            out.append({"delta": event.text, "object": "chat.completion.chunk"})

    def usage_reported(self, event: UsageReport, out: list) -> None:
        self.usage = event.usage

    def finished(self, event: Finish, out: list) -> None:
        out.append(_end("".join(self.texts), event.reason, self.usage, self.model))

    def waiting(self, event: Waiting, out: list) -> None:
        out.append(COMMENT)


def _end(text: str, finish_reason: str, usage: Usage, model: str) -> dict:
    return {
        "content": text,
        **_counts(usage),
        "model": model,
        "object": "chat.completion",
        "finish_reason": finish_reason,
    }


def parse_tokenize(body: Any) -> tuple:
    """``{prompt, max_length}``: the text and how many tokens to keep at most."""
    fields = Fields(body)
    prompt = fields.string("prompt")
    if prompt is None:
        raise fields.fail("prompt", "is required")
    return prompt, fields.integer("max_length", 1)


def render_tokens(tokens: list) -> dict:
    return {"tokenIds": [token for token, _ in tokens], "tokens": [piece for _, piece in tokens]}


def parse_embedding(body: Any, limits: Limits) -> list:
    """``{prompt: [texts]}`` (a single string is accepted too)."""
    fields = Fields(body)
    prompt = fields.raw("prompt")
    texts = [prompt] if isinstance(prompt, str) else prompt
    if not (isinstance(texts, list) and texts and all(isinstance(t, str) and t for t in texts)):
        raise fields.fail("prompt", "must be a non-empty list of non-empty strings")
    if len(texts) > limits.max_batch:
        raise fields.fail("prompt", f"may hold at most {limits.max_batch} texts, got {len(texts)}")
    return texts


def render_embedding(result: Embeddings, model: str) -> dict:
    return {
        "data": [list(vector) for vector in result.vectors],
        "model": model,
        "object": "embedding",
    }


def _counts(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
