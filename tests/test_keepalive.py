"""A stream whose first event is slow (a model server starting) keeps its client waiting
with comments, and still reports a failure."""
from __future__ import annotations

import threading
import time

import pytest

from proxy.errors import UpstreamUnavailableError
from proxy.generation import primed_patiently
from proxy.sse import KEEPALIVE


def events(delay: float, fail: str = "", closed: threading.Event | None = None):
    try:
        time.sleep(delay)
        if fail:
            raise UpstreamUnavailableError(fail)
        yield {"n": 1}
        yield {"n": 2}
    finally:
        if closed is not None:
            closed.set()


def test_a_prompt_first_event_needs_no_keepalive():
    assert list(primed_patiently(events(0.0), patience=1.0, every=0.05)) == [{"n": 1},
                                                                          {"n": 2}]


def test_a_prompt_failure_is_raised_before_the_stream_begins():
    with pytest.raises(UpstreamUnavailableError):
        primed_patiently(events(0.0, fail="no server"), patience=1.0)


def test_a_slow_first_event_is_preceded_by_keepalives():
    got = list(primed_patiently(events(0.3), patience=0.05, every=0.1))
    assert got[0] is KEEPALIVE and 2 <= got.count(KEEPALIVE) <= 5
    assert got[-2:] == [{"n": 1}, {"n": 2}]


def test_a_slow_failure_is_raised_inside_the_stream():
    stream = primed_patiently(events(0.2, fail="no server"), patience=0.05, every=0.05)
    assert next(stream) is KEEPALIVE
    with pytest.raises(UpstreamUnavailableError):
        list(stream)


def test_a_client_that_leaves_while_waiting_closes_the_stream_once_it_begins():
    closed = threading.Event()
    stream = primed_patiently(events(0.2, closed=closed), patience=0.05, every=0.05)
    assert next(stream) is KEEPALIVE
    stream.close()
    assert closed.wait(2)
