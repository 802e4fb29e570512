"""SSE framing: one ``data: <json>`` event per object, errors as one event, always ``[DONE]``."""
from __future__ import annotations

import json

import pytest

from proxy.draining import Drain
from proxy.errors import InvalidRequestError, UpstreamError, UpstreamUnavailableError
from proxy.sse import DONE, KEEPALIVE, KEEPALIVE_COMMENT, encode_event, event_stream
from tests.polling import wait_for


class Source:
    """An event iterator that records whether it was closed, and can fail after some events."""

    def __init__(self, events, error=None):
        self.events = list(events)
        self.error = error
        self.closed = False
        self.sent = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.sent < len(self.events):
            self.sent += 1
            return self.events[self.sent - 1]
        if self.error is not None:
            raise self.error
        raise StopIteration

    def close(self):
        self.closed = True


def decode(frame: bytes):
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n"), frame
    data = frame[len(b"data: "):-2].decode("utf-8")
    assert "\n" not in data
    return data if data == "[DONE]" else json.loads(data)


@pytest.mark.parametrize(("payload", "expected"), [
    pytest.param({"a": 1}, b'data: {"a":1}\n\n', id="compact"),
    pytest.param({"b": [1, 2], "a": None}, b'data: {"b":[1,2],"a":null}\n\n', id="order-kept"),
    pytest.param({"text": "h\u00e9llo \u4f60\u597d \U0001f600"},
                 'data: {"text":"h\u00e9llo \u4f60\u597d \U0001f600"}\n\n'.encode("utf-8"),
                 id="utf8-not-escaped"),
    pytest.param({"text": "line\nbreak"}, b'data: {"text":"line\\nbreak"}\n\n',
                 id="newline-escaped-in-json"),
])
def test_encode_event(payload, expected):
    assert encode_event(payload) == expected


def test_done_frame():
    assert DONE == b"data: [DONE]\n\n"


def test_stream_frames_every_event_then_done():
    source = Source([{"n": 1}, {"n": 2}])
    frames = list(event_stream(source, Drain()))
    assert frames == [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', DONE]
    assert source.closed


def test_events_that_arrived_together_go_out_in_one_write():
    frames = list(event_stream(iter([[{"n": 1}, {"n": 2}, {"n": 3}], {"n": 4}]), Drain()))
    assert frames == [b'data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n":3}\n\n',
                      b'data: {"n":4}\n\n', DONE]


def test_a_keepalive_is_a_comment_line():
    frames = list(event_stream(iter([KEEPALIVE, {"a": 1}]), Drain()))
    assert frames == [KEEPALIVE_COMMENT, b'data: {"a":1}\n\n', DONE]
    assert KEEPALIVE_COMMENT.startswith(b": ") and KEEPALIVE_COMMENT.endswith(b"\n\n")


def test_empty_stream_is_just_done():
    assert list(event_stream(iter(()), Drain())) == [DONE]


@pytest.mark.parametrize("error", [
    pytest.param(UpstreamError("upstream said 500", code="bad_gateway"), id="upstream"),
    pytest.param(UpstreamUnavailableError("upstream went away", retry_after=3), id="unavailable"),
    pytest.param(InvalidRequestError("bad field", param="stop"), id="invalid"),
])
def test_proxy_error_mid_stream_is_one_error_event_then_done(error):
    source = Source([{"n": 1}], error=error)
    events = [decode(frame) for frame in event_stream(source, Drain())]
    assert events == [{"n": 1}, error.to_dict(), "[DONE]"]
    assert events[1]["error"]["message"] == error.message
    assert source.closed


def test_unexpected_error_is_a_generic_event_without_its_message():
    source = Source([{"n": 1}], error=RuntimeError("secret detail /home/user/.key"))
    frames = list(event_stream(source, Drain()))
    events = [decode(frame) for frame in frames]
    assert events[0] == {"n": 1}
    assert events[-1] == "[DONE]"
    assert len(events) == 3
    error = events[1]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error"
    assert error["code"] == "internal_error"
    body = b"".join(frames).decode("utf-8")
    assert "secret" not in body
    assert "RuntimeError" not in body
    assert "Traceback" not in body
    assert source.closed


def test_error_before_any_event_still_ends_with_done():
    events = [decode(frame) for frame in event_stream(Source([], UpstreamError("down")),
                                                               Drain())]
    assert events == [UpstreamError("down").to_dict(), "[DONE]"]


def test_closing_the_stream_early_closes_the_source():
    source = Source([{"n": 1}, {"n": 2}, {"n": 3}])
    stream = event_stream(source, Drain())
    assert next(stream) == b'data: {"n":1}\n\n'
    stream.close()
    assert source.closed
    assert source.sent == 1
    assert list(stream) == []


def test_closing_early_closes_a_generator_source():
    state = {"closed": False}

    def generate():
        try:
            yield {"n": 1}
            yield {"n": 2}
        finally:
            state["closed"] = True

    stream = event_stream(generate(), Drain())
    next(stream)
    assert not state["closed"]
    stream.close()
    assert state["closed"]


def test_source_without_close_is_fine():
    assert list(event_stream([{"n": 1}], Drain())) == [b'data: {"n":1}\n\n', DONE]


def test_a_stream_open_past_the_grace_period_ends_with_an_error_and_done():
    drain = Drain()
    stream = event_stream(iter([{"n": 1}, {"n": 2}, {"n": 3}]), drain)
    assert decode(next(stream)) == {"n": 1}
    assert drain.open_streams == 1
    drain.begin(grace=0)
    assert drain.wait_closed(0) is False
    wait_for(lambda: drain.ending)
    rest = [decode(frame) for frame in stream]
    assert rest[-1] == "[DONE]"
    assert rest[-2]["error"]["code"] == "shutting_down"
    assert {"n": 3} not in rest
    assert drain.open_streams == 0


def test_streams_that_end_in_time_are_not_cut():
    drain = Drain()
    stream = event_stream(iter([{"n": 1}, {"n": 2}]), drain)
    next(stream)
    drain.begin(grace=30)
    assert [decode(frame) for frame in stream] == [{"n": 2}, "[DONE]"]
    assert drain.wait_closed(5)
    wait_for(lambda: drain.ending)

