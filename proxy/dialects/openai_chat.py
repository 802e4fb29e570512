"""OpenAI chat completions (``POST /v1/chat/completions``), both ways.

Streams go role delta → content (and reasoning, tool-call) deltas → one chunk with the
``finish_reason`` per choice → a usage chunk when ``stream_options.include_usage`` asks →
``data: [DONE]``; every chunk carries the one id of the answer.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from proxy.dialects import openai
from proxy.dialects.openai import Choices
from proxy.dialects.streaming import EventRenderer
from proxy.events import (WAITING, Finish, ReasoningDelta, TextDelta, ToolCallDelta,
                          ToolCallStart, UsageReport)
from proxy.fields import Fields, effort, template_kwargs, tool_call
from proxy.sse import COMMENT
from proxy.types import Completion, Message, ToolCall, Usage

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
ID_PREFIX = "chatcmpl"
CHUNK = "chat.completion.chunk"


def parse(body: Any, *, max_choices: int) -> Choices:
    """Read a ``/v1/chat/completions`` body."""
    fields = Fields(body)
    messages = _messages(fields)
    logprobs = None
    if fields.boolean("logprobs"):
        logprobs = fields.integer("top_logprobs", 0, 20) or 0
    elif fields.raw("top_logprobs") is not None:
        fields.integer("top_logprobs", 0, 20)
    thinking = fields.boolean("enable_thinking")
    variables = template_kwargs(fields, thinking=thinking,
                                effort=effort(fields, "reasoning_effort"))
    request = openai.generation_request(fields, messages=messages, logprobs=logprobs,
                                        template_kwargs=variables)
    return openai.choices(fields, (request,), max_choices)


def _messages(fields: Fields) -> tuple:
    raw = fields.raw("messages")
    if not isinstance(raw, list):
        raise fields.fail("messages", "must be a non-empty list of messages")
    if not raw:
        raise fields.fail("messages", "must not be empty")
    return tuple(_message(Fields(item, f"messages[{i}]."), i) for i, item in enumerate(raw))


def _message(fields: Fields, index: int) -> Message:
    role = fields.string("role")
    if role is None:
        raise fields.fail("role", "is required")
    if role not in ROLES:
        raise fields.fail("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    tool_calls = fields.raw("tool_calls")
    if tool_calls is not None and not (role == "assistant" and isinstance(tool_calls, list)):
        raise fields.fail("tool_calls", "must be a list, on assistant messages only")
    calls = tuple(tool_call(call, f"call{index}x{j}")
                  for j, call in enumerate(fields.objects("tool_calls")))
    content = _content(fields, allow_null=role == "assistant" and bool(tool_calls))
    reasoning = fields.string("reasoning_content") if role == "assistant" else None
    return Message(role=role, content=content, name=fields.string("name"), tool_calls=calls,
                   tool_call_id=fields.string("tool_call_id"), reasoning=reasoning or "")


def _content(fields: Fields, *, allow_null: bool) -> str:
    content = fields.raw("content")
    if isinstance(content, str):
        return content
    if content is None:
        if allow_null:
            return ""
        raise fields.fail("content", "is required")
    if not isinstance(content, list):
        raise fields.fail("content", "must be a string or a list of content parts")
    texts = []
    for j, part in enumerate(content):
        part_fields = Fields(part, f"{fields.prefix}content[{j}].")
        kind = part_fields.string("type")
        if kind not in ("text", "input_text"):
            raise part_fields.fail("type", f"{kind!r} is not supported; only text parts are")
        text = part_fields.string("text")
        if text is None:
            raise part_fields.fail("text", "is required")
        texts.append(text)
    return "\n".join(texts)


# -- whole answers ----------------------------------------------------------------------------

def render(id: str, model: str, completions: Sequence[Completion]) -> dict:
    """A ``chat.completion`` body with one choice per completion."""
    body = {
        "id": id, "object": "chat.completion", "created": openai.now(), "model": model,
        "choices": [{
            "index": i,
            "message": _message_body(c.text, c.tool_calls, c.reasoning),
            "logprobs": openai.chat_logprobs(c.logprobs) if c.logprobs else None,
            "finish_reason": c.finish_reason,
        } for i, c in enumerate(completions)],
        "usage": openai.usage_body(openai.total_usage(completions)),
    }
    return openai.historic_extras(body, completions)


def _message_body(text: str, tool_calls: Sequence[ToolCall], reasoning: str) -> dict:
    message = {"role": "assistant", "content": text if text or not tool_calls else None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}
            for call in tool_calls]
    return message


# -- streams ----------------------------------------------------------------------------------

class Stream(EventRenderer, openai.Wire):
    """Chat completion chunks from the core's events."""

    def __init__(self, choices: Choices, id: str, model: str) -> None:
        self.id = id
        self.model = model
        self.created = openai.now()
        self.include_usage = choices.include_usage
        self.index = 0  # the choice being streamed
        self.begun = False  # its role delta has gone out
        self.usage = Usage()

    def event(self, event, out: list) -> None:
        kind = type(event)
        if kind is TextDelta and self.begun:  # most events: a token of text
            out.append(self._chunk({"content": event.text}, event.logprobs))
            return
        if event is WAITING:
            out.append(COMMENT)
            return
        if not self.begun:
            self.begun = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if kind is TextDelta:
            out.append(self._chunk({"content": event.text}, event.logprobs))
        elif kind is ReasoningDelta:
            out.append(self._chunk({"reasoning_content": event.text}))
        elif kind is ToolCallStart:
            out.append(self._chunk({"tool_calls": [{
                "index": event.index, "id": event.id, "type": "function",
                "function": {"name": event.name, "arguments": ""}}]}))
        elif kind is ToolCallDelta:
            out.append(self._chunk({"tool_calls": [{
                "index": event.index, "function": {"arguments": event.arguments}}]}))
        elif kind is UsageReport:
            self.usage += event.usage
        elif kind is Finish:
            out.append(self._chunk({}, finish_reason=event.reason))
            self.index += 1
            self.begun = False

    def closing(self) -> list:
        """The usage chunk, when asked for."""
        if not self.include_usage:
            return []
        return [[openai.usage_chunk(self.id, self.model, self.created, CHUNK, self.usage)]]

    def _chunk(self, delta: dict, logprobs: tuple = (),
               finish_reason: Optional[str] = None) -> dict:
        return {"id": self.id, "object": CHUNK, "created": self.created, "model": self.model,
                "choices": [{"index": self.index, "delta": delta,
                             "logprobs": openai.chat_logprobs(logprobs) if logprobs else None,
                             "finish_reason": finish_reason}]}
