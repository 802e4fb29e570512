"""Run the choices a request asks for and turn backend chunks into OpenAI stream events."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import closing
from contextvars import copy_context
from itertools import chain
from typing import Callable, Iterator

from proxy import builders
from proxy.sse import KEEPALIVE
from proxy.backends import Backend
from proxy.ops import measure
from proxy.ops.measure import waiting
from proxy.schemas import Choices
from proxy.types import Chunk, Usage

PATIENCE = 2.0  # seconds a stream's first event may take before keep-alives begin
KEEPALIVE_EVERY = 5.0  # seconds between keep-alives: well inside proxies' idle timeouts


def jobs(choices: Choices) -> list:
    """One generation per choice: each prompt ``n`` times, in choice-index order."""
    return [request for request in choices.requests for _ in range(choices.n)]


def complete_all(backend: Backend, choices: Choices) -> list:
    """Generate every choice; several run at once, as the upstream's slots allow."""
    todo = jobs(choices)
    if len(todo) == 1 or not backend.concurrent:
        completions = [backend.complete(request) for request in todo]
    else:
        with waiting(), ThreadPoolExecutor(max_workers=len(todo)) as pool:
            completions = list(pool.map(backend.complete, todo))
    total = Usage()
    for index, completion in enumerate(completions):
        total = _add(total, completion.usage, count_prompt=index % choices.n == 0)
    measure.generated(total.prompt_tokens, total.completion_tokens)
    return completions


def primed(events: Iterator[dict]) -> "Primed":
    """Start ``events`` now, so that a failure before the first byte is an HTTP error."""
    return Primed(next(events), events)


class Primed:
    """A stream whose first event has been read: that event, then the rest.

    Iterating is ``itertools.chain``'s, at C speed for every token; closing it (the client
    went away) closes the rest.
    """

    __slots__ = ("first", "rest")

    def __init__(self, first, rest: Iterator) -> None:
        self.first = first
        self.rest = rest

    def __iter__(self) -> Iterator:
        return chain((self.first,), self.rest)

    def close(self) -> None:
        self.rest.close()


def primed_patiently(events: Iterator[dict], patience: float = PATIENCE,
                     every: float = KEEPALIVE_EVERY) -> Iterator:
    """Like :func:`primed`, but a first event slower than ``patience`` (a server starting)
    commits the stream and sends :data:`~proxy.sse.KEEPALIVE` every ``every`` seconds until
    it comes, so that intermediaries do not time the request out. A failure after that is
    an error event."""
    first: Future = Future()
    threading.Thread(target=copy_context().run, args=(_first_event, events, first),
                     daemon=True, name="first-event").start()
    try:
        return Primed(first.result(patience), events)
    except FutureTimeout:
        return _keeping_alive(first, events, every)


def _first_event(events: Iterator[dict], first: Future) -> None:
    try:
        first.set_result(next(events))
    except BaseException as exc:  # the stream's own error, raised where it is read
        first.set_exception(exc)


def _keeping_alive(first: Future, events: Iterator[dict], every: float) -> Iterator:
    try:
        while True:
            yield KEEPALIVE
            try:
                event = first.result(every)
                break
            except FutureTimeout:
                pass
    except GeneratorExit:  # the client left: close the stream once it has begun
        first.add_done_callback(lambda _: events.close())
        raise
    with closing(events):
        yield event
        yield from events


def chat_events(backend: Backend, choices: Choices, id: str, model: str) -> Iterator:
    """Role delta, content deltas, one finish chunk per choice, then usage if asked.

    Events whose chunks arrived together come as one list (see :func:`_in_writes`).
    """
    created = builders.now()
    usage = Usage()
    for index, request in enumerate(jobs(choices)):
        calls = 0  # tool calls streamed so far in this choice: the next one's index

        def events_of(chunk: Chunk) -> list:
            nonlocal calls, usage
            events = []
            if chunk.text or chunk.logprobs:
                events.append(builders.chat_chunk(id, model, created, index,
                                                  {"content": chunk.text}, chunk.logprobs))
            for call in chunk.tool_calls:
                events += [builders.chat_chunk(id, model, created, index, {"tool_calls": [delta]})
                           for delta in builders.tool_call_deltas(calls, call)]
                calls += 1
            if chunk.finish_reason:
                usage = _add(usage, chunk.usage, count_prompt=index % choices.n == 0)
                events.append(builders.chat_chunk(id, model, created, index, {},
                                                  finish_reason=chunk.finish_reason))
            return events

        with closing(backend.stream(request)) as chunks:
            first = next(chunks)
            measure.first_token()
            yield builders.chat_chunk(id, model, created, index,
                                      {"role": "assistant", "content": ""})
            yield from _in_writes(chain((first,), chunks), events_of)
    measure.generated(usage.prompt_tokens, usage.completion_tokens)
    if choices.include_usage:
        yield builders.usage_chunk(id, model, created, "chat.completion.chunk", usage)


def text_events(backend: Backend, choices: Choices, id: str, model: str) -> Iterator:
    """Text deltas and one finish chunk per choice, then usage if asked.

    Events whose chunks arrived together come as one list (see :func:`_in_writes`).
    """
    created = builders.now()
    usage = Usage()
    for index, request in enumerate(jobs(choices)):

        def events_of(chunk: Chunk) -> list:
            nonlocal usage
            events = []
            if chunk.text or chunk.logprobs:
                events.append(builders.text_chunk(id, model, created, index, chunk.text,
                                                  chunk.logprobs))
            if chunk.finish_reason:
                usage = _add(usage, chunk.usage, count_prompt=index % choices.n == 0)
                events.append(builders.text_chunk(id, model, created, index, "",
                                                  finish_reason=chunk.finish_reason))
            return events

        with closing(backend.stream(request)) as chunks:
            first = next(chunks)
            measure.first_token()
            if choices.echo:
                yield builders.text_chunk(id, model, created, index, request.prompt)
            yield from _in_writes(chain((first,), chunks), events_of)
    measure.generated(usage.prompt_tokens, usage.completion_tokens)
    if choices.include_usage:
        yield builders.usage_chunk(id, model, created, "text_completion", usage)


def _in_writes(chunks: Iterator[Chunk], events_of: Callable[[Chunk], list]) -> Iterator[list]:
    """The events of ``chunks``, in lists of those whose chunks the upstream sent together.

    A server streaming faster than the proxy writes leaves several tokens in each read; the
    events of one read go out in one write. What was read before a failure still goes out.
    """
    together: list = []
    try:
        for chunk in chunks:
            together += events_of(chunk)
            if together and not chunk.followed:
                yield together
                together = []
    except Exception:
        if together:
            yield together
        raise


def _add(total: Usage, usage: Usage | None, *, count_prompt: bool) -> Usage:
    usage = usage or Usage()
    return total + (usage if count_prompt else Usage(completion_tokens=usage.completion_tokens))
