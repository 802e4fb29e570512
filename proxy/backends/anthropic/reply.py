"""A Messages API answer read back, whole or streamed, as a :class:`Completion` or chunks:
its text, thoughts and ``tool_use`` blocks, why it stopped and its usage. Pure."""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Optional

from proxy.backends.wire.events import event_json, stream_error
from proxy.core.answers import Chunk, Completion, ToolCallPiece, Usage
from proxy.core.errors import UpstreamError
from proxy.core.events import Passed
from proxy.core.types import ToolCall

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def completion(body: object, upstream: str) -> Completion:
    """Read a whole answer."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise UpstreamError(f"{upstream} answered a message without content")
    text, thoughts, calls = [], [], []
    for block in body["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "thinking":
            thoughts.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    str(block.get("id", "")),
                    str(block.get("name", "")),
                    json.dumps(block.get("input") or {}, ensure_ascii=False),
                )
            )
    return Completion(
        text="".join(text),
        finish_reason=_finish(body.get("stop_reason")),
        usage=usage(body.get("usage")),
        tool_calls=tuple(calls),
        reasoning="".join(thoughts),
        stop_sequence=body.get("stop_sequence") or None,
    )


def counted(body: object, upstream: str) -> int:
    """The prompt's tokens a ``count_tokens`` answer tells."""
    tokens = body.get("input_tokens") if isinstance(body, dict) else None
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise UpstreamError(f"{upstream} answered a token count without input_tokens")
    return tokens


def usage(body: object, completion_tokens: Optional[int] = None) -> Usage:
    """The usage a message reports (``input_tokens`` counts what was not read from a cache;
    ``server_tool_use`` the searches the upstream ran itself)."""
    body = body if isinstance(body, dict) else {}
    cached = _count(body.get("cache_read_input_tokens"))
    prompt = (
        _count(body.get("input_tokens")) + cached + _count(body.get("cache_creation_input_tokens"))
    )
    return Usage(
        prompt,
        completion_tokens if completion_tokens is not None else _count(body.get("output_tokens")),
        cached if "cache_read_input_tokens" in body else None,
        web_searches=_count((body.get("server_tool_use") or {}).get("web_search_requests"))
        if isinstance(body.get("server_tool_use"), dict)
        else 0,
    )


def stream_chunks(batches: Iterable[list], upstream: str) -> Iterator[Chunk]:
    """Turn a Messages stream's events into chunks, ending with exactly one final chunk (its
    finish reason, stop word and usage); an ``error`` event, or a stream that ends before
    ``message_stop``, is an exception."""
    reader = MessagesReader(upstream)
    for lines in batches:
        yield from reader.read(lines)
        if reader.stopped:
            return
    raise reader.cut_short()


def verbatim_chunks(batches: Iterable[list], upstream: str) -> Iterator:
    """The chunks of :func:`stream_chunks`, each read's after its lines as the upstream wrote
    them (:class:`Passed`), for a client that speaks the same API; a read that makes no
    chunk, an empty one, so that its lines leave at once."""
    reader = MessagesReader(upstream)
    for lines in batches:
        yield Passed(tuple(lines))
        yield from reader.read(lines) or (Chunk(),)
        if reader.stopped:
            return
    raise reader.cut_short()


class MessagesReader:
    """A Messages stream's events read as chunks, one read's lines at a time."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.told: Optional[dict] = None  # the usage told so far (message_start's, updated)
        self.finish, self.stop_word, self.output = "stop", None, None
        self.calls: dict = {}  # block index -> call index
        self.stopped = False  # message_stop has come

    def read(self, lines: list) -> list:
        """The chunks ``lines`` hold (the last of them final, once the message stops)."""
        chunks: list = []
        for raw in lines:
            if raw[:5] != b"data:":
                continue  # event names, blank separators, comments
            event = event_json(raw[5:].strip(), self.upstream)
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "error":
                raise stream_error(event, self.upstream)
            chunk = self._chunk(kind, event)
            if chunk is not None:
                chunks.append(chunk)
            if self.stopped:
                break
        return chunks

    def cut_short(self) -> UpstreamError:
        return UpstreamError(f"{self.upstream} ended the stream before its message stopped")

    def _chunk(self, kind: object, event: dict) -> Optional[Chunk]:
        if kind == "message_start":
            message = event.get("message") or {}
            self.told = message.get("usage") or {}
            return Chunk(prompt_count=usage(self.told).prompt_tokens or None)
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.calls[event.get("index")] = len(self.calls)
                piece = ToolCallPiece(
                    index, "", str(block.get("id", "")), str(block.get("name", ""))
                )
                return Chunk(tool_calls=(piece,))
        elif kind == "content_block_delta":
            return self._delta(event)
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            self.finish = _finish(delta.get("stop_reason"))
            self.stop_word = delta.get("stop_sequence") or None
            told = event.get("usage") or {}
            self.output = _count(told.get("output_tokens"))
            if isinstance(told, dict):  # the latest counts: server tools' uses among them
                self.told = {**(self.told or {}), **told}
        elif kind == "message_stop":
            self.stopped = True
            return Chunk(
                finish_reason=self.finish,
                usage=usage(self.told, self.output),
                stop_sequence=self.stop_word,
            )
        return None

    def _delta(self, event: dict) -> Optional[Chunk]:
        delta = event.get("delta") or {}
        step = delta.get("type")
        if step == "text_delta" and delta.get("text"):
            return Chunk(text=str(delta["text"]))
        if step == "thinking_delta" and delta.get("thinking"):
            return Chunk(reasoning=str(delta["thinking"]))
        if step == "input_json_delta" and event.get("index") in self.calls:
            piece = ToolCallPiece(self.calls[event["index"]], str(delta.get("partial_json", "")))
            return Chunk(tool_calls=(piece,))
        return None


def _finish(reason: object) -> str:
    return FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
