"""Run the choices a request asks for and turn backend chunks into OpenAI stream events."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import closing
from contextvars import copy_context
from typing import Iterator

from proxy import builders
from proxy.sse import KEEPALIVE, Held
from proxy.backends import Backend
from proxy.ops import measure
from proxy.ops.measure import waiting
from proxy.schemas import Choices
from proxy.types import Usage

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


def primed(events: Iterator[dict]) -> Iterator[dict]:
    """Start ``events`` now, so that a failure before the first byte is an HTTP error."""
    return _chain(next(events), events)


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
        return _chain(first.result(patience), events)
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
    yield from _chain(event, events)


def chat_events(backend: Backend, choices: Choices, id: str, model: str) -> Iterator[dict]:
    """Role delta, content deltas, one finish chunk per choice, then usage if asked."""
    created = builders.now()
    usage = Usage()
    for index, request in enumerate(jobs(choices)):
        calls = 0  # tool calls streamed so far in this choice: the next one's index
        with closing(backend.stream(request)) as chunks:
            first = next(chunks)
            measure.first_token()
            yield builders.chat_chunk(id, model, created, index,
                                      {"role": "assistant", "content": ""})
            for chunk in _chain(first, chunks):
                if chunk.text or chunk.logprobs:
                    yield _written(builders.chat_chunk(id, model, created, index,
                                                       {"content": chunk.text}, chunk.logprobs),
                                   chunk)
                for call in chunk.tool_calls:
                    for delta in builders.tool_call_deltas(calls, call):
                        yield builders.chat_chunk(id, model, created, index,
                                                  {"tool_calls": [delta]})
                    calls += 1
                if chunk.finish_reason:
                    usage = _add(usage, chunk.usage, count_prompt=index % choices.n == 0)
                    yield builders.chat_chunk(id, model, created, index, {},
                                              finish_reason=chunk.finish_reason)
    measure.generated(usage.prompt_tokens, usage.completion_tokens)
    if choices.include_usage:
        yield builders.usage_chunk(id, model, created, "chat.completion.chunk", usage)


def text_events(backend: Backend, choices: Choices, id: str, model: str) -> Iterator[dict]:
    """Text deltas and one finish chunk per choice, then usage if asked."""
    created = builders.now()
    usage = Usage()
    for index, request in enumerate(jobs(choices)):
        with closing(backend.stream(request)) as chunks:
            first = next(chunks)
            measure.first_token()
            if choices.echo:
                yield builders.text_chunk(id, model, created, index, request.prompt)
            for chunk in _chain(first, chunks):
                if chunk.text or chunk.logprobs:
                    yield _written(builders.text_chunk(id, model, created, index, chunk.text,
                                                       chunk.logprobs), chunk)
                if chunk.finish_reason:
                    usage = _add(usage, chunk.usage, count_prompt=index % choices.n == 0)
                    yield builders.text_chunk(id, model, created, index, "",
                                              finish_reason=chunk.finish_reason)
    measure.generated(usage.prompt_tokens, usage.completion_tokens)
    if choices.include_usage:
        yield builders.usage_chunk(id, model, created, "text_completion", usage)


def _written(event: dict, chunk) -> object:
    """The event, held for the next one when that has already arrived."""
    return Held(event) if chunk.followed else event


def _chain(first, rest: Iterator) -> Iterator:
    """``first`` then ``rest``; closing the chain at any point closes ``rest``."""
    with closing(rest):
        yield first
        yield from rest


def _add(total: Usage, usage: Usage | None, *, count_prompt: bool) -> Usage:
    usage = usage or Usage()
    return total + (usage if count_prompt else Usage(completion_tokens=usage.completion_tokens))
