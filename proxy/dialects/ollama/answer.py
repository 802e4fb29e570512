"""Ollama's answers: a whole answer of chat or generate and the lines a stream is made of,
times as Ollama writes them, done reasons, durations and tool calls; the headers naming what
the proxy left out of the request, and the error shape."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Optional, Sequence

from proxy.core.answers import Usage
from proxy.core.errors import ProxyError
from proxy.core.types import ToolCall
from proxy.dialects.dialect import Ask, named
from proxy.dialects.ollama.request import OllamaNotes

IGNORED_HEADER = "x-oai-proxy-ignored-options"
# fields of the request the proxy did not act on: a keep_alive from a key that may not
# manage the servers every key shares
IGNORED_FIELDS_HEADER = "x-oai-proxy-ignored-fields"


def new_id() -> str:
    return ""  # Ollama's answers carry no id


def created_at() -> str:
    """Now, as Ollama writes times: RFC 3339 in UTC, to the nanosecond."""
    nanoseconds = time.time_ns()
    return f"{_second(nanoseconds // 1_000_000_000)}.{nanoseconds % 1_000_000_000:09d}Z"


def _second(seconds: int) -> str:
    return f"{datetime.fromtimestamp(seconds, timezone.utc):%Y-%m-%dT%H:%M:%S}"


class Clock:
    """:func:`created_at` as bytes, for a stream's lines: the date and time are written once
    a second, the nanoseconds every line."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = b""

    def now(self) -> bytes:
        nanoseconds = time.time_ns()
        second, fraction = divmod(nanoseconds, 1_000_000_000)
        if second != self.second:
            self.second, self.prefix = second, _second(second).encode()
        return self.prefix + b".%09dZ" % fraction


def done_reason(reason: str) -> str:
    """``length`` when the answer ran out of tokens, else ``stop`` (a turn that calls tools
    ends with ``stop`` too, as Ollama's do)."""
    return "length" if reason == "length" else "stop"


def durations(
    notes: OllamaNotes, usage: Usage, first: Optional[int] = None, loaded: Optional[int] = None
) -> dict:
    """The durations and counts Ollama reports, durations in nanoseconds: the total as the
    proxy measured it; the prompt's and the answer's as the server timed them, else as
    measured around ``first`` (when the first token came); the load (the wait for the model's
    server to start) from ``loaded``."""
    now = time.monotonic_ns()
    loaded = loaded or notes.started
    first = first or now
    prompt = usage.prompt_ms * 1e6 if usage.prompt_ms is not None else max(first - loaded, 0)
    answer = usage.eval_ms * 1e6 if usage.eval_ms is not None else now - first
    return {
        "total_duration": now - notes.started,
        "load_duration": loaded - notes.started,
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": int(prompt),
        "eval_count": usage.completion_tokens,
        "eval_duration": int(answer),
    }


def tool_call(call: ToolCall, index: int) -> dict:
    """A call as Ollama's clients read it: its arguments an object (text that is not one is
    kept whole under ``arguments``)."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        arguments = {"arguments": call.arguments}
    return {"id": call.id, "function": {"index": index, "name": call.name, "arguments": arguments}}


def line(
    model: str,
    kind: str,
    text: str,
    *,
    thinking: str = "",
    calls: Sequence = (),
    done: bool = False,
) -> dict:
    """One object of an answer: a chat's ``message`` or generate's ``response``."""
    body = {"model": model, "created_at": created_at()}
    if kind == "chat":
        message = {"role": "assistant", "content": text}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = list(calls)
        body["message"] = message
    else:
        body["response"] = text
        if thinking:
            body["thinking"] = thinking
    body["done"] = done
    return body


def whole(ask, model: str, kind: str, completions: Sequence) -> dict:
    """The one object of an answer that does not stream."""
    (completion,) = completions
    notes = ask.notes
    thinking = completion.reasoning if notes.think is not False else ""
    body = line(
        model,
        kind,
        completion.text,
        thinking=thinking,
        done=True,
        calls=[tool_call(call, i) for i, call in enumerate(completion.tool_calls)],
    )
    body.update(
        done_reason=done_reason(completion.finish_reason), **durations(notes, completion.usage)
    )
    return body


def headers(asked: Ask) -> dict:
    """The response headers naming the options and the fields left out, when any were."""
    notes = asked.notes
    found = {}
    if notes.ignored:
        found[IGNORED_HEADER] = named(notes.ignored)
    if notes.ignored_fields:
        found[IGNORED_FIELDS_HEADER] = named(notes.ignored_fields)
    return found


def error_body(error: ProxyError) -> dict:
    """Ollama's error shape."""
    return {"error": error.message}
