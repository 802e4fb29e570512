"""A Messages API answer read back, whole or streamed, as a :class:`Completion` or chunks:
its text, thoughts and ``tool_use`` blocks, why it stopped and its usage. Pure."""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Optional

from proxy.backends.wire.events import event_json, stream_error
from proxy.core.errors import UpstreamError
from proxy.core.types import Chunk, Completion, ToolCall, ToolCallPiece, Usage

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


def usage(body: object, completion_tokens: Optional[int] = None) -> Usage:
    """The usage a message reports (``input_tokens`` counts what was not read from a cache)."""
    body = body if isinstance(body, dict) else {}
    cached = _count(body.get("cache_read_input_tokens"))
    prompt = (
        _count(body.get("input_tokens")) + cached + _count(body.get("cache_creation_input_tokens"))
    )
    return Usage(
        prompt,
        completion_tokens if completion_tokens is not None else _count(body.get("output_tokens")),
        cached if "cache_read_input_tokens" in body else None,
    )


def stream_chunks(batches: Iterable[list], upstream: str) -> Iterator[Chunk]:
    """Turn a Messages stream's events into chunks, ending with exactly one final chunk (its
    finish reason, stop word and usage); an ``error`` event, or a stream that ends before
    ``message_stop``, is an exception."""
    started: Optional[dict] = None  # message_start's usage
    finish, stop_word, output = "stop", None, None
    calls: dict = {}  # block index -> call index
    for lines in batches:
        for raw in lines:
            if raw[:5] != b"data:":
                continue  # event names, blank separators, comments
            event = event_json(raw[5:].strip(), upstream)
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "error":
                raise stream_error(event, upstream)
            if kind == "message_start":
                message = event.get("message") or {}
                started = message.get("usage") or {}
                yield Chunk(prompt_count=usage(started).prompt_tokens or None)
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                if block.get("type") == "tool_use":
                    index = calls[event.get("index")] = len(calls)
                    yield Chunk(
                        tool_calls=(
                            ToolCallPiece(
                                index, "", str(block.get("id", "")), str(block.get("name", ""))
                            ),
                        )
                    )
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                step = delta.get("type")
                if step == "text_delta" and delta.get("text"):
                    yield Chunk(text=str(delta["text"]))
                elif step == "thinking_delta" and delta.get("thinking"):
                    yield Chunk(reasoning=str(delta["thinking"]))
                elif step == "input_json_delta" and event.get("index") in calls:
                    piece = ToolCallPiece(calls[event["index"]], str(delta.get("partial_json", "")))
                    yield Chunk(tool_calls=(piece,))
            elif kind == "message_delta":
                delta = event.get("delta") or {}
                finish = _finish(delta.get("stop_reason"))
                stop_word = delta.get("stop_sequence") or None
                output = _count((event.get("usage") or {}).get("output_tokens"))
            elif kind == "message_stop":
                yield Chunk(
                    finish_reason=finish, usage=usage(started, output), stop_sequence=stop_word
                )
                return
    raise UpstreamError(f"{upstream} ended the stream before its message stopped")


def _finish(reason: object) -> str:
    return FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
