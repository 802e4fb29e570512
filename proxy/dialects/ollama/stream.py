"""Ollama's streamed answers from the core's events: one JSON object per line, ``done: false``
until the last, which carries the reason and the times."""

from __future__ import annotations

import time
from typing import Optional

import orjson

from proxy.core.answers import Usage
from proxy.core.errors import ProxyError
from proxy.core.events import (
    Finish,
    PromptCounted,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageReport,
    Waiting,
)
from proxy.core.types import ToolCall
from proxy.dialects.dialect import Ask
from proxy.dialects.ollama.answer import Clock, done_reason, durations, error_body, line, tool_call
from proxy.dialects.streaming import EventRenderer, Lines

patient = False  # a line that is not JSON would break Ollama's clients: no keep-alives


class OllamaStream(Lines, EventRenderer):
    """One answer of ``/api/chat`` (``kind`` chat: a ``message`` a line) or ``/api/generate``
    (``response``), line by line; each tool call whole, in a line of its own."""

    def __init__(self, ask: Ask, model: str, kind: str) -> None:
        self.notes = ask.notes
        self.model = model
        self.kind = kind
        self.calls: dict = {}  # index → [id, name, argument parts]
        self.usage = Usage()
        self.prompt = 0
        self.first: Optional[int] = None  # when the first token came (ns)
        self.loaded: Optional[int] = None  # when the model's server was ready, if it started
        self.clock = Clock()
        self.text_head = b'{"model":' + orjson.dumps(model) + b',"created_at":"'
        self.text_middle, self.text_tail = (
            (b'","message":{"role":"assistant","content":', b'},"done":false}\n')
            if kind == "chat"
            else (b'","response":', b',"done":false}\n')
        )

    @staticmethod
    def failure(error: ProxyError) -> list:
        return [error_body(error)]

    def waiting(self, event: Waiting, out: list) -> None:
        if self.first is None:  # the server is still starting: at least this long
            self.loaded = time.monotonic_ns()

    def prompt_counted(self, event: PromptCounted, out: list) -> None:
        self.prompt = event.tokens

    def text(self, event: TextDelta, out: list) -> None:
        """Most tokens: line()'s bytes, as encode_line writes them, the time and the text
        written in (the first token's time taken here: no call under every token)."""
        if event.text:
            if self.first is None:
                self.first = time.monotonic_ns()
            out.append(
                self.text_head
                + self.clock.now()
                + self.text_middle
                + orjson.dumps(event.text)
                + self.text_tail
            )

    def reasoning(self, event: ReasoningDelta, out: list) -> None:
        if event.text and self.notes.think is not False:
            self._token()
            out.append(line(self.model, self.kind, "", thinking=event.text))

    def call_started(self, event: ToolCallStart, out: list) -> None:
        self._token()
        self.calls[event.index] = [event.id, event.name, []]

    def call_arguments(self, event: ToolCallDelta, out: list) -> None:
        self.calls[event.index][2].append(event.arguments)

    def call_ended(self, event: ToolCallEnd, out: list) -> None:
        id, name, parts = self.calls[event.index]
        call = tool_call(ToolCall(id, name, "".join(parts)), event.index)
        out.append(line(self.model, self.kind, "", calls=[call]))

    def usage_reported(self, event: UsageReport, out: list) -> None:
        self.usage = event.usage

    def finished(self, event: Finish, out: list) -> None:
        usage = (
            self.usage
            if self.usage.prompt_tokens
            else Usage(
                self.prompt,
                self.usage.completion_tokens,
                prompt_ms=self.usage.prompt_ms,
                eval_ms=self.usage.eval_ms,
            )
        )
        last = line(self.model, self.kind, "", done=True)
        last.update(
            done_reason=done_reason(event.reason),
            **durations(self.notes, usage, self.first, self.loaded),
        )
        if self.kept is not None:
            self.kept(last)
        out.append(last)

    def _token(self) -> None:
        if self.first is None:
            self.first = time.monotonic_ns()
