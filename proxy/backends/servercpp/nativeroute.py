"""A client's own ``POST /completion`` body (llama.cpp's API, :mod:`proxy.dialects.native`),
sent on verbatim to the server, which judges every field of it: only ``stream`` is set. Its
answer is passed back as the server wrote it, and read all the same, for the usage, the
budgets, the slot and the inspector.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

from proxy.backends.servercpp import parse
from proxy.backends.servercpp.known import KnownServer
from proxy.core.answers import Completion, Usage
from proxy.core.events import Passed
from proxy.core.types import GenerationRequest, amended

PATH = "/completion"
API = "servercpp"  # the client API whose bodies this route takes


class NativeRoute:
    """Bodies the client wrote for the server itself."""

    def __init__(self, server: KnownServer) -> None:
        self.server = server

    def complete(self, request: GenerationRequest) -> Completion:
        server, body = self.server, self._body(request, stream=False)
        answer = server.admission.run(
            lambda: server.client.post_json(PATH, body, caller=request.caller), request.caller
        )
        return answered(answer, server.client.label)

    def stream(self, request: GenerationRequest) -> Iterator:
        server, body = self.server, self._body(request, stream=True)

        def attempt() -> Iterator:
            with contextlib.ExitStack() as stack:
                lines = stack.enter_context(server.client.stream(PATH, body, caller=request.caller))
                yield from passed_chunks(lines, server.client.label)

        return server.admission.stream(
            attempt, request.caller, ends=_last, slot=lambda item: getattr(item, "slot", None)
        )

    def _body(self, request: GenerationRequest, *, stream: bool) -> dict:
        body = {**request.clients_own(API), "stream": stream}
        side = request.caller.side
        if side is not None:
            side.sent(PATH, body)
        return body


def answered(answer: object, upstream: str) -> Completion:
    """A whole answer, read: one object, or a list of them (one per prompt), its usage
    their sum."""
    if not isinstance(answer, list):
        completion = parse.completion(answer, upstream, None)
        return amended(completion, verbatim=answer)
    each = [parse.completion(item, upstream, None) for item in answer]
    return Completion(
        text="".join(completion.text for completion in each),
        finish_reason=each[-1].finish_reason if each else "stop",
        usage=sum((completion.usage for completion in each), Usage()),
        verbatim=answer,
    )


def passed_chunks(batches: Iterable[list], upstream: str) -> Iterator:
    """Each read's lines as the server wrote them (:class:`Passed`), then the chunks they
    make (:func:`parse.stream_chunks`'s), which the usage and the slot are read from."""
    read: list = []

    def reads() -> Iterator[list]:
        for lines in batches:
            read.append(lines)
            yield lines

    for chunk in parse.stream_chunks(reads(), upstream, None):
        if read:
            yield Passed(tuple(line for lines in read for line in lines))
            read.clear()
        yield chunk
    if read:
        yield Passed(tuple(line for lines in read for line in lines))


def _last(item: object) -> bool:
    """Whether ``item`` ends the server's generation (and so frees its slot)."""
    return getattr(item, "finish_reason", None) is not None
