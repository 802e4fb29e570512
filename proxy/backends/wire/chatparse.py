"""Chat answers read back: OpenAI's chat completion as llama-server's chat layer and every
OpenAI-compatible server send it, whole or streamed, as a :class:`Completion` or chunks (its
content, thoughts and tool calls as the server's parser read them, its usage from its counts
or timings), and the server's own fields beside them (its extras: llama-server's
``timings``, ``prompt_progress``, ``system_fingerprint``, ``__verbose``; another engine's):
all of them with a whole answer and a stream's last chunk, and, within a stream, those the
client asked for (``return_progress``, ``timings_per_token``: the proxy asks for them itself
too). Pure.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Optional

import orjson

from proxy.backends.wire import events
from proxy.core.answers import UNTOLD, Chunk, Completion, ToolCallPiece, Usage
from proxy.core.errors import UpstreamError
from proxy.core.types import ToolCall

DONE = b"[DONE]"
CUT = "\ufffd"  # what the server writes for the bytes of a character the token limit cut
# what an answer holds that the proxy writes itself in the client's API: never an extra
OWN = frozenset({"id", "object", "created", "model", "choices", "usage", "error"})
# the extras a stream tells as it goes when the client asks for them, by the field that asks
ASKED = {"return_progress": "prompt_progress", "timings_per_token": "timings"}


def extras(body: dict) -> dict:
    """The server's own fields of an answer or an event."""
    return {name: value for name, value in body.items() if name not in OWN}


def wanted(unread: Mapping) -> frozenset:
    """The extras a stream tells as it goes, as the client's ``unread`` fields ask."""
    return frozenset(told for asking, told in ASKED.items() if unread.get(asking) is True)


def completion(body: object, upstream: str, top: Optional[int]) -> Completion:
    """Read a whole chat answer."""
    choice = first_choice(body, upstream)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise UpstreamError(f"{upstream} answered a chat without a message")
    logprobs = choice.get("logprobs")
    finish = _finish(choice.get("finish_reason"))
    text = _text(message.get("content"))
    if finish == "length":  # a character the limit cut is left out, as its stream leaves it
        text = text.rstrip(CUT)
    return Completion(
        text=text,
        finish_reason=finish,
        usage=usage(body.get("usage"), body.get("timings")),
        logprobs=events.logprobs(
            logprobs.get("content") if isinstance(logprobs, dict) else None, top
        ),
        tool_calls=tuple(
            _call(call) for call in message.get("tool_calls") or () if isinstance(call, dict)
        ),
        reasoning=_text(message.get("reasoning_content")),
        extras=extras(body),
    )


def usage(body: object, timings: object = None) -> Usage:
    """The answer's usage, with the server's times from its ``timings``; the audio tokens
    of its prompt where it counts them (OpenAI's ``prompt_tokens_details.audio_tokens``),
    for their price."""
    if not isinstance(body, dict):
        if not isinstance(timings, dict):
            return Usage(how=UNTOLD)
        return Usage(**events.durations(timings))
    details = body.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = details.get("cached_tokens")
    return Usage(
        _count(body.get("prompt_tokens")),
        _count(body.get("completion_tokens")),
        cached if isinstance(cached, int) else None,
        audio_prompt_tokens=_count(details.get("audio_tokens")),
        **events.durations(timings),
    )


def stream_chunks(
    batches: Iterable[list], upstream: str, top: Optional[int], asked: frozenset = frozenset()
) -> Iterator[Chunk]:
    """Turn the chat stream's events into chunks, ending with exactly one final chunk (see
    :class:`ChatStreamReader`)."""
    reader = ChatStreamReader(upstream, top, asked)
    for lines in batches:
        yield from reader.read(lines)
        if reader.ended:
            return
    yield from reader.end()


class ChatStreamReader:
    """A chat stream's events read into chunks, one read's lines at a time, ending with
    exactly one final chunk.

    The prompt's first progress report counts the prompt: a chunk of the count alone goes
    at once, so that the answer's first byte leaves as the server begins, as the server's
    own would. The finish reason comes a chunk before the usage; the final chunk carries
    both. ``data: {"error": …}`` becomes an exception, and so does a stream that ends before
    its finish.

    Most events are one token of text and nothing else: they take the shortest way, every
    other event the whole reading of :meth:`event`. A reader is called, not iterated, by the
    route that reads the lines: one generator less under every token.
    """

    def __init__(self, upstream: str, top: Optional[int], asked: frozenset = frozenset()) -> None:
        """``asked``: the extras told as the stream goes (see :func:`wanted`)."""
        self.upstream = upstream
        self.top = top
        self.asked = asked
        self.told: dict = {}  # the extras of the finish, for the last chunk
        self.prompt: Optional[int] = None
        self.counted = False
        self.finish: Optional[str] = None
        self.ended = False  # the final chunk has been read: read no more
        # a plain text event is a chunk of its text alone: the count went out, no finish
        # waits, no probabilities are read (what every event after the first tells)
        self.plain = False

    def read(self, lines: list) -> list:
        """The chunks of one read's whole lines."""
        upstream, out = self.upstream, []
        last = len(lines) - 1  # the last event's line: those before it are followed
        while last >= 0 and lines[last][:5] != b"data:":
            last -= 1
        loads, partial = orjson.loads, Chunk.partial
        for index, raw in enumerate(lines):
            if raw[:5] != b"data:":
                continue  # blank separators and keep-alive comments
            value = raw[5:]
            if b"{" in value[:2]:
                try:
                    body = loads(value)  # JSON's whitespace around it (a CR) is read as such
                except orjson.JSONDecodeError:
                    body = _event(value.strip(), upstream)
            else:
                value = value.strip()
                if value == DONE:
                    break
                body = _event(value, upstream)
            choices = body.get("choices") if type(body) is dict else None
            if (
                choices
                and self.plain
                and type(choices) is list
                and "timings" not in body
                and "prompt_progress" not in body
                and "error" not in body
            ):
                choice = choices[0]
                delta = choice.get("delta") if type(choice) is dict else None
                if type(delta) is dict and len(delta) == 1 and choice.get("finish_reason") is None:
                    text = delta.get("content")
                    if type(text) is str and text:
                        out.append(partial(text, (), index < last))
                        continue
            out += self.event(body, index < last)
            if self.ended:
                break
        return out

    def event(self, body: object, followed: bool) -> list:
        """The chunks of one event (none, one, or the final one)."""
        out = self._event(body, followed)
        self.plain = self.counted and self.finish is None and self.top is None
        return out

    def _event(self, body: object, followed: bool) -> list:
        upstream = self.upstream
        if type(body) is not dict:
            raise UpstreamError(f"{upstream} sent a stream event that is not a JSON object")
        if "error" in body:
            raise events.stream_error(body, upstream)
        out = []
        told = {name: body[name] for name in self.asked if name in body}
        progress = body.get("prompt_progress")
        if isinstance(progress, dict) and _count(progress.get("total")):
            self.prompt = progress["total"]
            if not self.counted:  # the server has begun: say so now, not at the first token
                self.counted = True
                out.append(Chunk(prompt_count=self.prompt, extras=told or None))
                told = {}
        so_far = _timed(body.get("timings"))
        if self.finish is not None:  # the usage follows the finish
            self.ended = True
            last = _final(self.finish, body, None if self.counted else self.prompt)
            return [_told(last, {**self.told, **extras(body)})]
        choices = body.get("choices")
        if not choices or not isinstance(choices[0], dict):
            return out + ([Chunk(extras=told)] if told else [])
        choice = choices[0]
        chunk = _delta(choice.get("delta"), choice.get("logprobs"), self.top, followed)
        reason = choice.get("finish_reason")
        if reason is not None:
            self.finish = _finish(reason)
            self.told = extras(body)
            told = {}
        if chunk is None:
            return out + ([Chunk(extras=told)] if told else [])
        if told:
            chunk.__dict__["extras"] = told
        if so_far is not None:
            chunk.__dict__["usage"] = so_far
        if not self.counted:
            self.counted = True
            chunk.__dict__["prompt_count"] = self.prompt
        out.append(chunk)
        return out

    def end(self) -> list:
        """The stream's last chunk, once its events have run out."""
        if self.finish is not None:  # the server sent no usage: end all the same
            last = _final(self.finish, {}, None if self.counted else self.prompt)
            return [_told(last, self.told)]
        raise UpstreamError(
            f"{self.upstream} ended the chat stream before finishing; check its log"
        )


def _event(value: bytes, upstream: str) -> dict:
    try:  # orjson inline: this runs once per token
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        body = events.event_json(value, upstream)
    if type(body) is not dict:
        raise UpstreamError(f"{upstream} sent a stream event that is not a JSON object")
    return body


def _delta(delta: object, logprobs: object, top: Optional[int], followed: bool) -> Optional[Chunk]:
    """A chunk of what the delta says; ``None`` when it says nothing (the role, progress)."""
    if not isinstance(delta, dict):
        return None
    text = _text(delta.get("content"))
    reasoning = _text(delta.get("reasoning_content"))
    calls = tuple(_piece(call) for call in delta.get("tool_calls") or () if isinstance(call, dict))
    probabilities = (
        ()
        if top is None or not isinstance(logprobs, dict)
        else events.logprobs(logprobs.get("content"), top)
    )
    if not (text or reasoning or calls or probabilities):
        return None
    chunk = Chunk.partial(text, probabilities, followed)
    if reasoning:
        chunk.__dict__["reasoning"] = reasoning
    if calls:
        chunk.__dict__["tool_calls"] = calls
    return chunk


def _timed(timings: object) -> Optional[Usage]:
    """The usage so far, from the timings a chunk carries (when asked for every chunk)."""
    if not isinstance(timings, dict):
        return None
    cached, evaluated = _count(timings.get("cache_n")), _count(timings.get("prompt_n"))
    return Usage(cached + evaluated, _count(timings.get("predicted_n")), cached)


def _final(finish: Optional[str], body: dict, prompt: Optional[int]) -> Chunk:
    return Chunk(
        finish_reason=finish or "stop",
        usage=usage(body.get("usage"), body.get("timings")),
        prompt_count=prompt,
    )


def _told(chunk: Chunk, fields: dict) -> Chunk:
    """``chunk`` (made here, the stream's last) with the extras ``fields``."""
    if fields:
        chunk.__dict__["extras"] = fields
    return chunk


def _piece(call: dict) -> ToolCallPiece:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    name = function.get("name")
    index = call.get("index")
    return ToolCallPiece(
        index if isinstance(index, int) else 0,
        _text(function.get("arguments")),
        id=call.get("id") if isinstance(call.get("id"), str) else None,
        name=name if isinstance(name, str) and name else None,
    )


def _call(call: dict) -> ToolCall:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return ToolCall(_text(call.get("id")), _text(function.get("name")), arguments)


def first_choice(body: object, upstream: str, asked: str = "chat") -> dict:
    """The first of an answer's ``choices`` (to a ``chat``, or another route's ``asked``)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
        raise UpstreamError(f"{upstream} answered the {asked} without a choice")
    return choices[0]


def _finish(reason: object) -> str:
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
