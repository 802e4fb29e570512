"""OpenAI completions (``POST /v1/completions``) from a raw prompt, both ways.

A list of prompts gives ``n`` choices for each, grouped prompt by prompt; ``echo`` puts the
prompt before its answer (in a stream, as the choice's first chunk). A ``suffix`` asks for
the text between the prompt and it (fill-in-the-middle, an editor's completion).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from proxy.core.answers import Completion
from proxy.core.events import Finish, TextDelta
from proxy.core.fields import Fields
from proxy.dialects.dialect import Ask, Limits
from proxy.dialects.openai import answer, request
from proxy.dialects.openai.answer import error_body, headers  # noqa: F401 (the dialect's)
from proxy.dialects.openai.stream import ChoicesStream, patient  # noqa: F401 (the dialect's)

READ = request.READ | {"prompt", "suffix", "best_of", "logprobs", "echo"}


def new_id() -> str:
    return answer.new_id("cmpl")


def parse(body: Any, limits: Limits) -> Ask:
    """Read a ``/v1/completions`` body; a list of prompts gives choices for each."""
    fields = Fields(body)
    prompt = fields.raw("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = prompt
    elif prompt is None:
        raise fields.fail("prompt", "is required")
    else:
        raise fields.fail(
            "prompt", "must be a string or a list of strings (token-id prompts are not supported)"
        )
    if fields.raw("tools") is not None:
        raise fields.fail("tools", "need a chat: send them to /v1/chat/completions")
    suffix = fields.string("suffix") or None  # empty: nothing after the gap, a plain completion
    best_of = fields.integer("best_of", 1, limits.max_choices)
    logprobs = fields.integer("logprobs", 0, 20)
    requests = tuple(
        request.generation_request(
            fields, limits, READ, prompt=text, suffix=suffix, logprobs=logprobs
        )
        for text in prompts
    )
    ask = request.ask(fields, requests, limits, echo=bool(fields.boolean("echo")))
    if best_of is not None and best_of != ask.n:
        raise fields.fail("best_of", "other than n is not supported by this server")
    return ask


def render(ask: Ask, id: str, model: str, completions: Sequence[Completion]) -> dict:
    """A ``text_completion`` body; choices are grouped prompt by prompt."""
    echoes = _echoes(ask)
    body = {
        "id": id,
        "object": "text_completion",
        "created": answer.now(),
        "model": model,
        "choices": [
            {
                "index": i,
                "text": (echoes[i] if echoes else "") + c.text,
                "logprobs": answer.text_logprobs(c.logprobs) if c.logprobs else None,
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(completions)
        ],
        "usage": answer.usage_body(answer.total_usage(completions)),
    }
    return answer.extras(body, completions)


def _echoes(ask: Ask) -> Optional[list]:
    """Each choice's prompt, when ``echo`` puts it before the answer."""
    if not ask.notes.echo:
        return None
    return [generation.prompt for generation in ask.requests for _ in range(ask.n)]


def stream(ask: Ask, id: str, model: str) -> "CompletionsStream":
    return CompletionsStream(ask, id, model)


class CompletionsStream(ChoicesStream):
    """Text completion chunks from the core's events (reasoning and tools have no place in
    a raw completion)."""

    object = "text_completion"
    empty = {"text": "", "logprobs": None, "finish_reason": None}

    def __init__(self, ask: Ask, id: str, model: str) -> None:
        super().__init__(ask, id, model)
        self.echoes = _echoes(ask)

    def text(self, event: TextDelta, out: list) -> None:
        self._begin(out)
        out.append(self._text(event.text, event.logprobs))

    def finished(self, event: Finish, out: list) -> None:
        self._begin(out)
        out.append(self._text("", finish_reason=event.reason))
        self.next_choice()

    def _begin(self, out: list) -> None:
        if not self.begun:
            self.begun = True
            if self.echoes is not None:
                out.append(self._text(self.echoes[self.index]))

    def _text(self, text: str, logprobs: tuple = (), finish_reason=None) -> dict:
        return self.chunk(
            {
                "text": text,
                "logprobs": answer.text_logprobs(logprobs) if logprobs else None,
                "finish_reason": finish_reason,
            }
        )
