"""The only code that writes server-sent events: ``data: <json>\\n\\n`` and ``data: [DONE]``."""
from __future__ import annotations

import logging
from typing import Iterable, Iterator

import orjson

from proxy.draining import Drain
from proxy.errors import ProxyError, ShuttingDownError

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
KEEPALIVE = object()  # an event meaning "nothing yet": sent as a comment, which clients skip
KEEPALIVE_COMMENT = b": waiting for the model's server to start\n\n"

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # keep nginx (a common front) from buffering the stream
}


def encode_event(payload: dict) -> bytes:
    """Frame one JSON object as an SSE event: compact JSON in real UTF-8 (clients decode
    whole lines).

    orjson, because this runs once per streamed token and takes a tenth of the time of
    ``json.dumps``; non-string keys become strings, as with ``json``.
    """
    return b"data: " + orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"


def event_stream(events: Iterable, drain: Drain) -> Iterator[bytes]:
    """Frame events, turn a failure after the first byte into one error event, end with DONE.

    A list of events (those whose tokens the server sent together) goes out in one write.

    Closing this generator (the client went away) closes ``events`` too, which closes the
    upstream connection so the server stops generating. A stream still open when the proxy
    stops after its grace period ends the same way as one that failed.
    """
    with drain.stream():
        yield from _framed(events, drain)


def _framed(events: Iterable, drain: Drain) -> Iterator[bytes]:
    try:
        for event in events:
            if type(event) is list:
                yield b"".join([encode_event(each) for each in event])
            elif event is KEEPALIVE:
                yield KEEPALIVE_COMMENT
                continue
            else:
                yield encode_event(event)
            if drain.ending:
                raise ShuttingDownError("the proxy is shutting down and could not finish this "
                                        "answer in time; send the request again")
    except ProxyError as exc:
        logger.warning("stream ended with an error: %s", exc.message)
        yield encode_event(exc.to_dict())
    except Exception as exc:  # a stream has no other way left to tell the client
        logger.error("stream failed: %s: %s", type(exc).__name__, exc)
        yield encode_event(ProxyError("the stream failed inside the proxy; see its log",
                                      code="internal_error").to_dict())
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    yield DONE
