"""The only code that writes streamed answers: server-sent events (``data: <json>``, or
``event: <type>`` with it) or newline-delimited JSON.

A dialect's stream renderer (its :class:`Framing`) says how its API renders and frames
events, what a failure after the first byte looks like and what ends the stream; this module
writes the bytes (:class:`EventStream`), keeps count of open streams for a graceful stop, and
makes sure that every stream ends the way its API ends one, whatever happened.
"""

from __future__ import annotations

import logging
from itertools import chain
from time import perf_counter
from typing import Callable, Iterator, Optional, Protocol

import orjson

from proxy.core.draining import Drain
from proxy.core.errors import ProxyError, ShuttingDownError
from proxy.logs import raised_at

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
COMMENT = object()  # a payload meaning "nothing yet": sent as a comment, which clients skip
COMMENT_BYTES = b": waiting for the model's server to start\n\n"
EVENT_STREAM = "text/event-stream"

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # keep nginx (a common front) from buffering the stream
}


class Framing(Protocol):
    """How one client API frames its stream, and renders what it streams (a dialect's stream
    renderer: :class:`proxy.dialects.streaming.EventRenderer`)."""

    mimetype: str  # the stream's content type
    end: bytes  # what follows the last event (``data: [DONE]`` for OpenAI)

    @staticmethod
    def encode(payload: dict) -> bytes:
        """One payload as the bytes of one event (:func:`encode_event`, :func:`encode_named`
        or :func:`encode_line`). A payload of ``bytes`` is an event its renderer framed
        itself (a token's text, written into the event's bytes once per token) and goes out
        as it is."""

    def failure(self, error: ProxyError) -> list:
        """The payloads that tell the client its stream failed after the first byte."""

    def write(self, batch) -> list:
        """The payloads of one item of the stream (the events of one upstream read)."""

    def closing(self) -> list:
        """The payloads that end the stream, after its last item."""


def encode_event(payload: dict) -> bytes:
    """Frame one JSON object as an SSE event: compact JSON in real UTF-8 (clients decode
    whole lines).

    orjson, because this runs once per streamed token and takes a tenth of the time of
    ``json.dumps``; non-string keys become strings, as with ``json``.
    """
    return b"data: " + orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"


def encode_named(payload: dict) -> bytes:
    """An event whose ``event:`` line names its payload's ``type`` (Anthropic, Responses)."""
    return (
        b"event: "
        + payload["type"].encode()
        + b"\ndata: "
        + orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
        + b"\n\n"
    )


def encode_line(payload: dict) -> bytes:
    """One JSON object on a line of its own (NDJSON, as Ollama streams)."""
    return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS) + b"\n"


class EventStream:
    """A streamed answer's body, as the WSGI server iterates it: each item of ``batches``
    written by ``framing`` (events become payloads, payloads bytes) in one write; a failure
    after the first byte become the framing's failure events; the framing's end last,
    however it ended.

    It counts as open in ``drain`` from its making, while its first write waits too (a slot,
    a server starting), and closed once the WSGI server closes it; a stream still open when
    the proxy stops after its grace period ends as one that failed. Closing it (the client
    went away) closes ``batches``, which closes the upstream connection so the server stops
    generating.

    Its clock (``watch``, the request's measure) runs while a piece is made, not while the
    WSGI server writes it to a slow client. Once its last piece is made, ``on_end`` is told,
    before the server ends the answer (with chunked coding, the client sees the end only
    after); ``tee`` is told each piece as it goes, and ``on_close`` that it was closed.

    One generator frame (:meth:`_written`) between the WSGI server and the stream of events,
    which every streamed token passes through: the rendering and framing are calls it makes.
    """

    def __init__(self, batches: Iterator, framing: Framing, drain: Drain, watch=None) -> None:
        self.batches = batches
        self.framing = framing
        self.drain = drain
        self.closed = drain.open()
        self.watch = watch
        self.tee: Optional[Callable[[bytes], None]] = None
        self.on_end: Callable[[], None] = _nothing
        self.on_close: Callable[[], None] = _nothing
        self.first = b""
        self.over = False  # its items ran out before the first write: that was the closing
        self.pieces: Optional[Iterator[bytes]] = None

    def prime(self) -> "EventStream":
        """Make the first write now, so that a failure before the first byte is raised here,
        where the API still answers with an HTTP status."""
        try:
            for batch in self.batches:
                first = self.framed(self.framing.write(batch))
                if first:
                    self.first = first
                    return self
            self.first, self.over = self.framed(self.framing.closing()), True
            return self
        except BaseException:
            self.close()
            raise

    def framed(self, payloads: list) -> bytes:
        """The bytes of one write."""
        encode = self.framing.encode
        return b"".join(
            [
                each if type(each) is bytes else COMMENT_BYTES if each is COMMENT else encode(each)
                for each in payloads
            ]
        )

    def __iter__(self) -> Iterator[bytes]:
        self.pieces = self._written()
        return self.pieces

    def _written(self) -> Iterator[bytes]:
        """The pieces, each the bytes of one write. Under every token the one call made is
        the framing's ``write``: a write that is one framed payload already (most tokens')
        goes as it is, and the time the server takes to send a piece is counted as a wait
        on the client, not the proxy's own time, where a pause and a resume would be two
        calls more."""
        framing, drain, watch, tee = self.framing, self.drain, self.watch, self.tee
        write, framed = framing.write, self.framed
        if watch is not None:
            watch.resume()
        try:
            try:
                writes = chain(
                    ([self.first],),
                    () if self.over else map(write, self.batches),
                    () if self.over else self._closing(),
                )
                for payloads in writes:
                    if len(payloads) == 1 and type(payloads[0]) is bytes:
                        piece = payloads[0]
                    else:
                        piece = framed(payloads)
                    if piece:
                        if tee is not None:
                            tee(piece)
                        handed = perf_counter()
                        try:
                            yield piece
                        finally:
                            if watch is not None:
                                watch.waited += perf_counter() - handed
                    if drain.ending:
                        raise ShuttingDownError(
                            "the proxy is shutting down and could not finish this "
                            "answer in time; send the request again"
                        )
            except Exception as exc:  # a stream has no other way left to tell the client
                piece = failed(framing, exc)
                if tee is not None:
                    tee(piece)
                if watch is not None:
                    watch.pause()
                yield piece
                if watch is not None:
                    watch.resume()
            finally:
                close = getattr(self.batches, "close", None)
                if close is not None:
                    close()
            if tee is not None:
                tee(framing.end)
            if watch is not None:
                watch.pause()
            yield framing.end
            if watch is not None:
                watch.resume()
            self.on_end()
        finally:
            if watch is not None:
                watch.pause()

    def _closing(self) -> Iterator[list]:
        """The payloads that end the stream, made once its items have run out."""
        yield self.framing.closing()

    def close(self) -> None:
        """The WSGI server is done with it (or it was never sent)."""
        try:
            if self.pieces is not None:
                self.pieces.close()
        finally:
            try:
                close = getattr(self.batches, "close", None)
                if close is not None:
                    close()
            finally:
                self.closed()
                self.on_close()


def _nothing() -> None:
    """What nobody waits to be told."""


def failed(framing: Framing, exc: Exception) -> bytes:
    """The framing's failure events for a stream that broke off with ``exc``; what is not the
    proxy's own error is logged and told as an internal one."""
    if isinstance(exc, ProxyError):
        logger.warning("stream ended with an error: %s", exc)
    else:
        logger.error("stream failed: %s at %s: %s", type(exc).__name__, raised_at(exc), exc)
        exc = ProxyError("the stream failed inside the proxy; see its log", code="internal_error")
    return b"".join(framing.encode(each) for each in framing.failure(exc))
