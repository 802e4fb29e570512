"""The only code that writes streamed answers: server-sent events (``data: <json>``, or
``event: <type>`` with it) or newline-delimited JSON.

A dialect's stream renderer (:class:`Wire`) says how its API frames events, what a failure
after the first byte looks like and what ends the stream; this module writes the bytes,
keeps count of open streams for a graceful stop, and makes sure that every stream ends the
way its API ends one, whatever happened.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, Protocol

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


class Wire(Protocol):
    """How one client API frames its stream."""

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


def event_stream(
    writes: Iterable, wire: Wire, drain: Drain, closed: Callable[[], None]
) -> Iterator[bytes]:
    """Frame ``writes`` (each a payload, or a list of payloads to send in one write), turn a
    failure after the first byte into the wire's failure events, end with the wire's end.

    Closing this generator (the client went away) closes ``writes`` too, which closes the
    upstream connection so the server stops generating. A stream still open when the proxy
    stops after its grace period ends the same way as one that failed. ``closed`` counts it
    closed in ``drain``, which counted it open before its first write was made.
    """
    encode = wire.encode
    try:
        try:
            for write in writes:
                if type(write) is list:
                    yield b"".join(
                        [
                            each
                            if type(each) is bytes
                            else COMMENT_BYTES
                            if each is COMMENT
                            else encode(each)
                            for each in write
                        ]
                    )
                else:
                    yield COMMENT_BYTES if write is COMMENT else encode(write)
                if drain.ending:
                    raise ShuttingDownError(
                        "the proxy is shutting down and could not finish this "
                        "answer in time; send the request again"
                    )
        except Exception as exc:  # a stream has no other way left to tell the client
            yield failed(wire, exc)
        finally:
            close = getattr(writes, "close", None)
            if close is not None:
                close()
        yield wire.end
    finally:
        closed()


def failed(wire: Wire, exc: Exception) -> bytes:
    """The wire's failure events for a stream that broke off with ``exc``; what is not the
    proxy's own error is logged and told as an internal one."""
    if isinstance(exc, ProxyError):
        logger.warning("stream ended with an error: %s", exc)
    else:
        logger.error("stream failed: %s at %s: %s", type(exc).__name__, raised_at(exc), exc)
        exc = ProxyError("the stream failed inside the proxy; see its log", code="internal_error")
    return b"".join(wire.encode(each) for each in wire.failure(exc))
