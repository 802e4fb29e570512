"""Streamed answers: committed only once their first write is ready, so that a failure
before any byte is an HTTP error in the client's dialect, not a broken stream."""
from __future__ import annotations

from itertools import chain
from typing import Iterator

from flask import Response, request

from proxy.api.disconnect import client_gone_probe
from proxy.api.state import get_state
from proxy.sse import HEADERS, Wire, event_stream
from proxy.types import GenerationRequest


def watched(generation_request: GenerationRequest) -> GenerationRequest:
    """The request, able to tell whether its client is still there while it waits."""
    return generation_request.watched_by(client_gone_probe(request.environ))


def event_response(writes: Iterator, wire: Wire) -> Response:
    """Stream ``writes`` framed by ``wire``, once the first of them is ready."""
    return Response(event_stream(primed(writes), wire, get_state().drain),
                    mimetype="text/event-stream", headers=HEADERS)


def primed(writes: Iterator) -> "Primed":
    """Start ``writes`` now, so that a failure before the first byte is raised here."""
    return Primed(next(writes), writes)


class Primed:
    """A stream whose first write has been made: that write, then the rest.

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
