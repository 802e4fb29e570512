"""Stream framing: one event per object (``data:``, ``event:`` and ``data:``, or a JSON line), a
failure as the framing's own failure events, always the framing's end."""

from __future__ import annotations

import json

import pytest

from proxy.core.draining import Drain
from proxy.core.errors import InvalidRequestError, UpstreamError, UpstreamUnavailableError
from proxy.core.sse import COMMENT, COMMENT_BYTES, DONE, EventStream, encode_event, encode_named
from proxy.dialects.openai.answer import error_body
from proxy.dialects.streaming import Lines, NamedEvents
from proxy.ops.measure import Measure
from tests.polling import wait_for


class Payloads:
    """A stream whose items are payloads, or lists of payloads to send in one write."""

    @staticmethod
    def write(item) -> list:
        return item if type(item) is list else [item]

    @staticmethod
    def closing() -> list:
        return []


class DataFraming(Payloads):
    """OpenAI's way: ``data:`` lines, ``{"error": …}``, then ``[DONE]``."""

    encode = staticmethod(encode_event)
    mimetype = "text/event-stream"
    end = DONE

    @staticmethod
    def failure(error):
        return [error_body(error)]


class NamedFraming(Payloads, NamedEvents):
    """Anthropic's way: ``event:`` lines, an error event, nothing at the end."""

    @staticmethod
    def failure(error):
        return [{"type": "error", "error": {"type": "api_error", "message": error.message}}]


class LineFraming(Payloads, Lines):
    """Ollama's way: a JSON object a line, an ``{"error": …}`` line, nothing at the end."""

    @staticmethod
    def failure(error):
        return [{"error": error.message}]


def event_stream_of(source, drain=None, framing=DataFraming):
    """The pieces of a stream of ``source`` as a WSGI server takes them: iterated, then
    closed."""
    stream = EventStream(iter(source), framing, drain or Drain())
    try:
        yield from stream
    finally:
        stream.close()


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
    data = frame[len(b"data: ") : -2].decode("utf-8")
    assert "\n" not in data
    return data if data == "[DONE]" else json.loads(data)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({"a": 1}, b'data: {"a":1}\n\n', id="compact"),
        pytest.param({"b": [1, 2], "a": None}, b'data: {"b":[1,2],"a":null}\n\n', id="order-kept"),
        pytest.param(
            {"text": "h\u00e9llo \u4f60\u597d \U0001f600"},
            'data: {"text":"h\u00e9llo \u4f60\u597d \U0001f600"}\n\n'.encode("utf-8"),
            id="utf8-not-escaped",
        ),
        pytest.param(
            {"text": "line\nbreak"},
            b'data: {"text":"line\\nbreak"}\n\n',
            id="newline-escaped-in-json",
        ),
    ],
)
def test_encode_event(payload, expected):
    assert encode_event(payload) == expected


def test_done_frame():
    assert DONE == b"data: [DONE]\n\n"


def test_stream_frames_every_event_then_done():
    source = Source([{"n": 1}, {"n": 2}])
    frames = list(event_stream_of(source))
    assert frames == [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', DONE]
    assert source.closed


def test_events_that_arrived_together_go_out_in_one_write():
    frames = list(event_stream_of(iter([[{"n": 1}, {"n": 2}, {"n": 3}], {"n": 4}])))
    assert frames == [
        b'data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n":3}\n\n',
        b'data: {"n":4}\n\n',
        DONE,
    ]


def test_a_comment_is_a_comment_line():
    frames = list(event_stream_of(iter([COMMENT, [COMMENT, {"a": 1}]])))
    assert frames == [COMMENT_BYTES, COMMENT_BYTES + b'data: {"a":1}\n\n', DONE]
    assert COMMENT_BYTES.startswith(b": ") and COMMENT_BYTES.endswith(b"\n\n")


def test_named_events_carry_their_type_on_an_event_line():
    assert encode_named({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    frames = list(
        event_stream_of(Source([{"type": "ping"}], UpstreamError("down")), framing=NamedFraming)
    )
    assert frames == [
        b'event: ping\ndata: {"type":"ping"}\n\n',
        b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"down"}}\n\n',
        b"",
    ]


def test_empty_stream_is_just_done():
    assert list(event_stream_of(iter(()))) == [DONE]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(UpstreamError("upstream said 500", code="bad_gateway"), id="upstream"),
        pytest.param(
            UpstreamUnavailableError("upstream went away", retry_after=3), id="unavailable"
        ),
        pytest.param(InvalidRequestError("bad field", param="stop"), id="invalid"),
    ],
)
def test_proxy_error_mid_stream_is_one_error_event_then_done(error):
    source = Source([{"n": 1}], error=error)
    events = [decode(frame) for frame in event_stream_of(source)]
    assert events == [{"n": 1}, error_body(error), "[DONE]"]
    assert events[1]["error"]["message"] == error.message
    assert source.closed


def test_unexpected_error_is_a_generic_event_without_its_message():
    source = Source([{"n": 1}], error=RuntimeError("secret detail /home/user/.key"))
    frames = list(event_stream_of(source))
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
    events = [decode(frame) for frame in event_stream_of(Source([], UpstreamError("down")))]
    assert events == [error_body(UpstreamError("down")), "[DONE]"]


def test_closing_the_stream_early_closes_the_source():
    source = Source([{"n": 1}, {"n": 2}, {"n": 3}])
    stream = event_stream_of(source)
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

    stream = event_stream_of(generate())
    next(stream)
    assert not state["closed"]
    stream.close()
    assert state["closed"]


def test_source_without_close_is_fine():
    assert list(event_stream_of([{"n": 1}])) == [b'data: {"n":1}\n\n', DONE]


def test_a_stream_open_past_the_grace_period_ends_with_an_error_and_done():
    drain = Drain()
    stream = event_stream_of(iter([{"n": 1}, {"n": 2}, {"n": 3}]), drain)
    assert decode(next(stream)) == {"n": 1}
    drain.begin(grace=0)
    assert drain.wait_closed(0) is False
    wait_for(lambda: drain.ending)
    rest = [decode(frame) for frame in stream]
    assert rest[-1] == "[DONE]"
    assert rest[-2]["error"]["code"] == "shutting_down"
    assert {"n": 3} not in rest
    assert drain.wait_closed(0)


def test_streams_that_end_in_time_are_not_cut():
    drain = Drain()
    stream = event_stream_of(iter([{"n": 1}, {"n": 2}]), drain)
    next(stream)
    drain.begin(grace=30)
    assert [decode(frame) for frame in stream] == [{"n": 2}, "[DONE]"]
    assert drain.wait_closed(5)
    wait_for(lambda: drain.ending)


def test_ndjson_streams_write_a_line_an_object_and_end_a_failure_with_an_error_line():
    def source():
        yield [{"a": 1}, {"b": "é"}]
        raise UpstreamError("the server went away")

    body = b"".join(event_stream_of(source(), framing=LineFraming))
    assert body.decode("utf-8").split("\n") == [
        '{"a":1}',
        '{"b":"é"}',
        '{"error":"the server went away"}',
        "",
    ]


def test_a_stream_counts_as_open_from_before_its_first_write_and_closes_once():
    drain = Drain()
    closed = drain.open()  # still waiting for its slot
    drain.begin(grace=30)
    assert not drain.wait_closed(0.05) and not drain.ending
    closed()
    closed()  # the response's close after the stream's own: counted once
    assert drain.wait_closed(5)
    wait_for(lambda: drain.ending)


def test_priming_makes_the_first_write_and_a_failure_before_it_is_raised():
    stream = EventStream(iter([[], [{"n": 1}], [{"n": 2}]]), DataFraming, Drain()).prime()
    assert stream.first == b'data: {"n":1}\n\n'
    with pytest.raises(UpstreamError):
        EventStream(Source([], UpstreamError("down")), DataFraming, Drain()).prime()


def test_a_stream_tells_each_piece_its_end_and_its_close_and_times_only_its_making(monkeypatch):
    now = [0.0]  # the clock, moved by hand: a second making each piece, ten sending it
    for module in ("proxy.core.sse", "proxy.ops.measure"):
        monkeypatch.setattr(f"{module}.perf_counter", lambda: now[0])
    watch, told, drain = Measure(), [], Drain()

    def made(payloads):  # each batch takes the proxy a second to make
        now[0] += 1
        return payloads

    stream = EventStream(map(made, [[{"n": 1}], [{"n": 2}]]), DataFraming, drain, watch).prime()
    watch.pause()  # the view has returned: the clock stops until the server asks for pieces
    now[0] += 100
    stream.tee, stream.on_end = told.append, lambda: told.append("end")
    stream.on_close = lambda: told.append("closed")
    pieces = []
    for piece in stream:
        pieces.append(piece)
        now[0] += 10  # the server writes it to a slow client
    assert pieces == [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', DONE]
    assert told == [*pieces, "end"]
    assert watch.overhead == 2  # its making, not its sending
    assert not drain.wait_closed(0)  # open until the WSGI server closes it
    stream.close()
    assert told[-1] == "closed" and drain.wait_closed(0)


def test_a_stream_left_while_a_piece_is_sent_counts_the_sending_as_a_wait(monkeypatch):
    now = [0.0]
    for module in ("proxy.core.sse", "proxy.ops.measure"):
        monkeypatch.setattr(f"{module}.perf_counter", lambda: now[0])
    watch = Measure()
    stream = EventStream(iter([[{"n": 1}], [{"n": 2}]]), DataFraming, Drain(), watch).prime()
    now[0] += 1  # the view's own work
    watch.pause()
    pieces = iter(stream)
    assert next(pieces) == b'data: {"n":1}\n\n'
    now[0] += 10  # the client goes while the server writes the first piece
    stream.close()
    assert watch.overhead == 1
