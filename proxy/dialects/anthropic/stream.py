"""Anthropic's event sequence: ``message_start``, each block's ``content_block_start`` /
``_delta`` / ``_stop`` with indices from 0, ``message_delta``, ``message_stop``; ``ping``
while the answer waits; ``error`` when the stream fails after its first byte.

A hosted tool the gateway ran is told where it ran, between the texts of two turns: its call's
block starts with an empty ``input``, which one ``input_json_delta`` gives, as Anthropic
streams a call; its result's block starts whole (see :mod:`.runs`)."""

from __future__ import annotations

import json
from typing import Optional

import orjson

from proxy.core.answers import Served, Usage
from proxy.core.errors import ProxyError
from proxy.core.events import (
    WAITING,
    Finish,
    Passed,
    PromptCounted,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    ToolRan,
)
from proxy.dialects.anthropic.answer import error_body, signature, stop_reason, usage_body
from proxy.dialects.anthropic.passing import Passing
from proxy.dialects.anthropic.runs import blocks
from proxy.dialects.dialect import Ask
from proxy.dialects.streaming import BlockStream, EventRenderer, NamedEvents


class MessagesStream(NamedEvents, BlockStream):
    """Anthropic's event sequence from the core's events."""

    keepalive = {"type": "ping"}

    def __init__(self, ask: Ask, id: str, model: str) -> None:
        self.notes = ask.notes
        self.id = id
        self.model = model
        self.started = False  # message_start has gone out
        self.block: Optional[str] = None  # the type of the open block
        self.index = -1  # its index
        self.thoughts: list = []  # the open thinking block's text, for its signature
        self.prompt = 0
        self.usage = Usage()
        self.text_head = (-1, b"")  # (block index, what its text deltas' bytes begin with)
        self.ran: list = []  # the hosted tools' runs told
        self.begun = False  # its first events (not waits) have come
        self.passing: Optional[Passing] = None  # the upstream's own lines, passed on

    def write(self, events: list) -> list:
        """The payloads of the events; or, once the first events (after any waits) are the
        upstream's own lines (:class:`Passed`), those lines as it wrote them."""
        passing = self.passing
        if passing is not None:
            return [passing.write(event.lines) for event in events if type(event) is Passed]
        if not self.begun:  # its first events (who served it aside) tell which it is
            told = 0
            while told < len(events) and type(events[told]) is Served:
                self.told_served(events[told], [])
                told += 1
            events = events[told:]
            if events:
                self.begun = events[0] is not WAITING
                if type(events[0]) is Passed:
                    self.passed = True
                    self.passing = Passing(self.model, self.started)
                    return self.write(events)
        return EventRenderer.write(self, events)

    @staticmethod
    def failure(error: ProxyError) -> list:
        return [error_body(error)]

    def prompt_counted(self, event: PromptCounted, out: list) -> None:
        if not self.started:  # message_start tells it, as soon as it is known
            self.prompt = event.tokens
            self._start(out)

    def text(self, event: TextDelta, out: list) -> None:
        """Most tokens: the bytes of the block's delta event (``encode_named``'s), its text
        written in; what begins the message or its text block is asked for only where it
        has not begun (no call under every token)."""
        if not self.started:
            self._start(out)
        if event.text:
            if self.block != "text":
                self._open("text", {"type": "text", "text": ""}, out)
            if self.text_head[0] != self.index:
                self.text_head = (
                    self.index,
                    b'event: content_block_delta\ndata: {"type":'
                    b'"content_block_delta","index":%d,"delta":{"type":'
                    b'"text_delta","text":' % self.index,
                )
            out.append(self.text_head[1] + orjson.dumps(event.text) + b"}}\n\n")

    def reasoning(self, event: ReasoningDelta, out: list) -> None:
        self._start(out)
        if self.notes.thinking:
            self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self.thoughts.append(event.text)
            out.append(self._delta({"type": "thinking_delta", "thinking": event.text}))

    def call_started(self, event: ToolCallStart, out: list) -> None:
        self._start(out)
        self._open(
            "tool_use",
            {"type": "tool_use", "id": event.id, "name": event.name, "input": {}},
            out,
            fresh=True,
        )

    def call_arguments(self, event: ToolCallDelta, out: list) -> None:
        out.append(self._delta({"type": "input_json_delta", "partial_json": event.arguments}))

    def tool_ran(self, event: ToolRan, out: list) -> None:
        """A hosted tool's run: its call's block and its result's, after the text before."""
        self._start(out)
        call, result = blocks(event.run, len(self.ran))
        self.ran.append(event.run)
        self._open(call["type"], {**call, "input": {}}, out, fresh=True)
        arguments = json.dumps(call["input"], ensure_ascii=False, separators=(",", ":"))
        out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        self._open(result["type"], result, out, fresh=True)
        self._close(out)

    def finished(self, event: Finish, out: list) -> None:
        self._start(out)
        if self.index < 0:  # nothing said: an empty text block, as a whole answer has
            self._open("text", {"type": "text", "text": ""}, out)
        self._close(out)
        reason, sequence = stop_reason(self.notes, event.reason, event.stop_sequence)
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": usage_body(self.usage, self.ran),
            }
        )
        out.append({"type": "message_stop"})

    def _start(self, out: list) -> None:
        if self.started:
            return
        self.started = True
        out.append(
            {
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": self.prompt,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            }
        )

    def _open(self, block: str, start: dict, out: list, fresh: bool = False) -> None:
        """Make ``block`` the open block, closing another first (``fresh``: always anew)."""
        if self.block == block and not fresh:
            return
        self._close(out)
        self.block = block
        self.index += 1
        out.append({"type": "content_block_start", "index": self.index, "content_block": start})

    def _close(self, out: list) -> None:
        if self.block is None:
            return
        if self.block == "thinking":
            out.append(
                self._delta(
                    {"type": "signature_delta", "signature": signature("".join(self.thoughts))}
                )
            )
            self.thoughts = []
        out.append({"type": "content_block_stop", "index": self.index})
        self.block = None

    def _delta(self, delta: dict) -> dict:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}
