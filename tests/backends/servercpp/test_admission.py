"""The servercpp backend hands every slot lease back, however a generation ends.

Against the fake servers of every kind, on a real port: answered, upstream error,
client gone mid-stream, upstream too slow.
"""

from __future__ import annotations

import threading
from contextlib import closing

import pytest

from proxy.config.settings import Settings
from proxy.core.answers import Served
from proxy.core.errors import UpstreamError, UpstreamTimeoutError
from proxy.core.types import GenerationRequest
from proxy.fleet.build import build_fleet
from tests.fakes.servercpp import FakeServerCpp
from tests.runtimes import NO_FILES

KINDS = ["powerinfer", "llamacpp-2023", "llamacpp"]
PROMPT = GenerationRequest(prompt="hi", max_tokens=8)


@pytest.fixture(params=KINDS)
def fake(request):
    with FakeServerCpp(request.param, n_slots=2) as server:
        yield server


@pytest.fixture
def backend(fake):
    """Makes fleets of one on the fake server, closed after the test (a replica one took out
    of rotation is probed no more, so no later test's server on a reused port hears it)."""
    fleets = []

    def build(**settings):
        fleets.append(build_fleet(Settings.of(llama_api=fake.url, **settings), NO_FILES))
        return fleets[-1]

    yield build
    for fleet in fleets:
        fleet.close()


def in_flight(fleet) -> int:
    """Generations running or waiting on the fleet's one replica."""
    (model,) = fleet.status()
    return model["replicas"][0]["busy"] + model["replicas"][0]["queued"]


def test_answered(fake, backend):
    servercpp = backend()
    assert servercpp.complete(PROMPT).text == "Hello, world!"
    served, *chunks = servercpp.stream(PROMPT)
    assert type(served) is Served and "".join(chunk.text for chunk in chunks) == "Hello, world!"
    assert in_flight(servercpp) == 0


@pytest.mark.parametrize("mode", ["http500", "garbage", "midstream_error"])
def test_upstream_error(fake, backend, mode):
    servercpp = backend()
    fake.fail_mode = mode
    with pytest.raises(UpstreamError):
        servercpp.complete(PROMPT)
    with pytest.raises(UpstreamError):
        list(servercpp.stream(PROMPT))
    assert in_flight(servercpp) == 0


def test_client_gone_mid_stream(fake, backend):
    servercpp = backend()
    fake.gate = threading.Event()
    with closing(servercpp.stream(PROMPT)) as chunks:
        assert type(next(chunks)) is Served and next(chunks).text == "Hello"
        assert in_flight(servercpp) == 1
    assert in_flight(servercpp) == 0
    fake.gate.set()  # the fake goes on, finds the connection closed, and stops
    assert fake.cancelled.wait(5)


def test_upstream_too_slow(fake, backend):
    servercpp = backend(upstream_timeout=0.3)
    servercpp.complete(PROMPT)  # detect the kind first
    fake.fail_mode = "hang"
    with pytest.raises(UpstreamTimeoutError):
        servercpp.complete(PROMPT)
    with pytest.raises(UpstreamTimeoutError):
        list(servercpp.stream(PROMPT))
    assert in_flight(servercpp) == 0
