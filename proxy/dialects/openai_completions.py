"""OpenAI completions (``POST /v1/completions``) from a raw prompt, both ways.

A list of prompts gives ``n`` choices for each, grouped prompt by prompt; ``echo`` puts the
prompt before its answer (in a stream, as the choice's first chunk).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from proxy.dialects import openai
from proxy.dialects.openai import Choices
from proxy.dialects.streaming import EventRenderer
from proxy.events import WAITING, Finish, TextDelta, UsageReport
from proxy.fields import Fields
from proxy.sse import COMMENT
from proxy.types import Completion, Usage

ID_PREFIX = "cmpl"
OBJECT = "text_completion"


def parse(body: Any, *, max_choices: int) -> Choices:
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
        raise fields.fail("prompt", "must be a string or a list of strings "
                                    "(token-id prompts are not supported)")
    if fields.raw("tools") is not None:
        raise fields.fail("tools", "need a chat: send them to /v1/chat/completions")
    if fields.string("suffix"):
        raise fields.fail("suffix", "is not supported by this server")
    best_of = fields.integer("best_of", 1, max_choices)
    logprobs = fields.integer("logprobs", 0, 20)
    requests = tuple(openai.generation_request(fields, prompt=text, logprobs=logprobs)
                     for text in prompts)
    choices = openai.choices(fields, requests, max_choices)
    if best_of is not None and best_of != choices.n:
        raise fields.fail("best_of", "other than n is not supported by this server")
    return Choices(requests, choices.n, choices.stream, choices.include_usage,
                   echo=bool(fields.boolean("echo")))


def render(id: str, model: str, completions: Sequence[Completion], choices: Choices) -> dict:
    """A ``text_completion`` body; choices are grouped prompt by prompt."""
    prompts = [request.prompt for request in choices.requests]
    body = {
        "id": id, "object": OBJECT, "created": openai.now(), "model": model,
        "choices": [{
            "index": i,
            "text": (prompts[i // choices.n] if choices.echo else "") + c.text,
            "logprobs": openai.text_logprobs(c.logprobs) if c.logprobs else None,
            "finish_reason": c.finish_reason,
        } for i, c in enumerate(completions)],
        "usage": openai.usage_body(openai.total_usage(completions)),
    }
    return openai.historic_extras(body, completions)


class Stream(EventRenderer, openai.Wire):
    """Text completion chunks from the core's events (reasoning and tools have no place in
    a raw completion)."""

    def __init__(self, choices: Choices, id: str, model: str) -> None:
        self.id = id
        self.model = model
        self.created = openai.now()
        self.include_usage = choices.include_usage
        self.echoes = ([request.prompt for request in choices.requests for _ in range(choices.n)]
                       if choices.echo else None)
        self.index = 0
        self.begun = False
        self.usage = Usage()

    def event(self, event, out: list) -> None:
        if event is WAITING:
            out.append(COMMENT)
            return
        if not self.begun:
            self.begun = True
            if self.echoes is not None:
                out.append(self._chunk(self.echoes[self.index]))
        kind = type(event)
        if kind is TextDelta:
            out.append(self._chunk(event.text, event.logprobs))
        elif kind is UsageReport:
            self.usage += event.usage
        elif kind is Finish:
            out.append(self._chunk("", finish_reason=event.reason))
            self.index += 1
            self.begun = False

    def closing(self) -> list:
        if not self.include_usage:
            return []
        return [[openai.usage_chunk(self.id, self.model, self.created, OBJECT, self.usage)]]

    def _chunk(self, text: str, logprobs: tuple = (),
               finish_reason: Optional[str] = None) -> dict:
        return {"id": self.id, "object": OBJECT, "created": self.created, "model": self.model,
                "choices": [{"index": self.index, "text": text,
                             "logprobs": openai.text_logprobs(logprobs) if logprobs else None,
                             "finish_reason": finish_reason}]}
