"""The core: run a request's choices on a generator (the fleet, or the tool loop around it)
and tell the answer as one event stream.

Knows no client API: each dialect parses its body into :class:`GenerationRequest` values and
renders what comes back here. A whole answer is a :class:`Completion` per choice; a streamed
one is a stream of lists of :mod:`proxy.core.events`, each list holding the events of the tokens
the upstream sent in one read, so that they can leave in one write.

A request asked for ``n`` choices runs each prompt ``n`` times; its prompt tokens are counted
once, as OpenAI counts them, in the usage of its first choice.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import chain
from typing import Iterator, Optional, Sequence

from proxy.core.answers import Chunk, Completion, Served, Spent, Usage
from proxy.core.errors import ProxyError
from proxy.core.events import WAITING, ChoiceEvents
from proxy.core.meanwhile import PATIENCE, Helpers, meanwhile
from proxy.core.router import Generator
from proxy.core.types import GenerationRequest, amended
from proxy.ops.measure import Measure, waiting


def jobs(requests: Sequence[GenerationRequest], n: int = 1) -> list:
    """One generation per choice: each prompt ``n`` times, in choice-index order."""
    return [request for request in requests for _ in range(n)]


def complete(generator: Generator, requests: Sequence[GenerationRequest], n: int = 1) -> list:
    """Every choice, whole; several run at once, as the upstream's slots allow."""
    todo = jobs(requests, n)
    measure = todo[0].caller.measure
    try:
        if len(todo) == 1 or not generator.concurrent:
            completions = [generator.complete(request) for request in todo]
        else:
            with waiting(measure), ThreadPoolExecutor(max_workers=len(todo)) as pool:
                completions = list(pool.map(generator.complete, todo))
    except ProxyError as exc:  # what its parts spent before it failed is charged
        for part in exc.spent:
            _measure(measure, part.usage, part.served)
        raise
    counted = [
        _counted(completion, repeat=index % n != 0) for index, completion in enumerate(completions)
    ]
    for index, completion in enumerate(counted):
        if completion.spent:  # each part to the model that made it
            for at, part in enumerate(completion.spent):
                usage = _prompt_once(part.usage, at == 0 and index % n != 0)
                _measure(measure, usage, part.served)
        else:
            _measure(measure, completion.usage, completion.served)
    return counted


def stream(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    n: int = 1,
    *,
    patient: bool = False,
    helpers: Optional[Helpers] = None,
) -> Iterator[list]:
    """Every choice's events, one choice after another.

    Nothing is read until the first item is asked for, and nothing yielded before the first
    choice's first chunk has been read: a failure before any byte is raised by that first ask.
    While the model's server starts, :data:`~proxy.core.events.WAITING` comes first, alone;
    ``patient`` streams get it whenever the first event is slow (a free slot, too), at the
    price of a thread of ``helpers`` to wait in (the app's; by default, helpers of its own).
    """
    events = _events(generator, jobs(requests, n), n)
    target = requests[0].caller.target
    if patient or (target is not None and generator.starting(target)):
        return patiently(events, helpers or Helpers())
    return events


def _events(generator: Generator, todo: list, n: int) -> Iterator[list]:
    """Each choice's events, one choice after another (one choice: its own, one layer less
    under every token)."""
    if len(todo) == 1:
        return _in_reads(generator.stream(todo[0]), todo[0].caller.measure, repeat=False)
    return _choices(generator, todo, n)


def _choices(generator: Generator, todo: list, n: int) -> Iterator[list]:
    for index, request in enumerate(todo):
        yield from _in_reads(
            generator.stream(request), request.caller.measure, repeat=index % n != 0
        )


def _in_reads(chunks: Iterator, measure: Optional[Measure], *, repeat: bool) -> Iterator[list]:
    """The events of ``chunks``, in lists of those whose chunks the upstream sent together.

    A server streaming faster than the proxy writes leaves several tokens in each read; the
    events of one read go out in one write. What was read before a failure still goes out.
    The prompt's token count, where the first chunk tells it, comes first: with that chunk's
    events, or at once, alone, when it says nothing else. What the stream tells that is an
    event already (who answered, the upstream's own lines, a hosted tool's listing or run)
    goes on as it is, with the next chunk's events; :data:`WAITING` goes at once, alone.
    The usage of the choice is charged to the model that :class:`Served` it; a stream that
    ends before its usage (its client gone, a failure) is charged what it made
    (:func:`_made`).
    """
    together: list = []
    told = ChoiceEvents()
    timed = False  # the first token's time is taken
    served = None
    made = 0  # the chunks that said something: a token each, at the least
    so_far = None  # the usage so far, where the server tells it with its tokens
    charged = False
    parted = False  # a part of it told what it spent: it is charged part by part
    try:
        for chunk in chunks:
            if type(chunk) is not Chunk:
                if chunk is WAITING:  # the client is kept company meanwhile
                    together.append(WAITING)
                    yield together
                    together = []
                    continue
                if type(chunk) is Served:  # its model is counted as answering from now
                    served = chunk
                    _measure(measure, Usage(), served)
                elif type(chunk) is Spent:  # charged now; what follows is counted anew
                    usage = _prompt_once(chunk.usage, repeat and not parted)
                    _measure(measure, usage, chunk.served or served)
                    parted, made, so_far = True, 0, None
                    continue
                together.append(chunk)
                continue
            first = not told.counted
            said = told.add(chunk, together)
            if first and told.prompt is not None and not said and chunk.finish_reason is None:
                yield together  # the prompt's count alone, at once
                together = []
                continue
            made += said
            if chunk.finish_reason is not None:
                usage = _prompt_once(chunk.usage or Usage(), repeat)
                charged = True
                if not parted:  # an answer told in parts was charged its parts
                    _measure(measure, usage, served)
                told.end(chunk, usage, together)
            elif chunk.usage is not None:
                so_far = chunk.usage
            if together and not chunk.followed:
                if not timed:
                    timed = True
                    if measure is not None:
                        measure.mark_first_token()
                yield together
                together = []
    except Exception:
        if together:
            yield together
        raise
    finally:
        if not charged:
            made_now = _made(None if parted else told.prompt, made, so_far)
            _measure(measure, _prompt_once(made_now, repeat and not parted), served)
        chunks.close()


def _made(prompt: Optional[int], made: int, so_far: Optional[Usage]) -> Usage:
    """What a stream that ended before its usage made, as far as the proxy saw: the usage
    the server told so far, where it did, else the prompt's count (where told) and a token
    for each chunk that said something (a server writes at least one a chunk)."""
    if so_far is not None:
        return Usage(so_far.prompt_tokens or prompt or 0, max(so_far.completion_tokens, made))
    return Usage(prompt or 0, made)


def _counted(completion: Completion, *, repeat: bool) -> Completion:
    return amended(completion, usage=_prompt_once(completion.usage, True)) if repeat else completion


def _prompt_once(usage: Usage, repeat: bool) -> Usage:
    """A repeated prompt's usage, its prompt tokens left to the first choice's."""
    if not repeat:
        return usage
    return Usage(
        completion_tokens=usage.completion_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        web_searches=usage.web_searches,
        stored=usage.stored,
    )


def _measure(measure: Optional[Measure], usage: Usage, served: Optional[Served]) -> None:
    """Count ``usage`` against the model that ``served`` it (the one asked for, unknown),
    at the service tier it was served at."""
    if measure is not None:
        measure.add_tokens(
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens or 0,
            served.model if served is not None else "",
            (usage.web_searches, usage.audio_prompt_tokens, usage.stored),
            served.tier if served is not None else "",
        )


def patiently(
    events: Iterator[list],
    helpers: Helpers,
    patience: Optional[float] = None,
    every: Optional[float] = None,
) -> Iterator[list]:
    """``events``, but a first event slower than ``patience`` (a server starting) is preceded
    by ``[WAITING]`` every ``every`` seconds until it comes (by default
    :data:`~proxy.core.meanwhile.PATIENCE` and :data:`~proxy.core.meanwhile.WAITING_EVERY`),
    the first read in a thread of ``helpers``. A failure of the first event is raised as it
    is."""
    return _Patient(_first(events, helpers, patience, every), events)


def _first(
    events: Iterator[list], helpers: Helpers, patience: Optional[float], every: Optional[float]
) -> Iterator[list]:
    """``[WAITING]`` while the first event is slow, then the first event."""
    first = yield from meanwhile(
        partial(next, events),
        [WAITING],
        helpers,
        patience=PATIENCE if patience is None else patience,
        every=every,
        abandoned=events.close,
    )
    yield first


class _Patient:
    """The waits for the first event and the first event, then the rest of ``events``:
    iterated, a chain of the two (the rest goes through no frame of its own, every token
    through one frame less); closed, both, the events only once no thread reads them (a
    client that leaves meanwhile leaves their first read to close them as it ends)."""

    def __init__(self, first: Iterator[list], events: Iterator[list]) -> None:
        self.first, self.events = first, events
        self.items = chain(first, events)

    def __iter__(self) -> Iterator[list]:
        return self.items

    def __next__(self) -> list:
        return next(self.items)

    def close(self) -> None:
        reading = self.first.gi_yieldfrom is not None  # the first read is under way
        self.first.close()
        if not reading:
            self.events.close()
