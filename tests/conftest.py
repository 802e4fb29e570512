"""Fixtures shared by every test tier: apps from the factory, a fake backend, SSE reading."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import settings

from proxy.app import create_app
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from tests.e2e.llama_server import KINDS
from tests.fakes.backend import FakeBackend

# a real Redis, for what proxies share through it; the backends' markers; which worker runs what
pytest_plugins = ["tests.redis_server", "tests.tiers", "tests.schedule", "tests.errorwords"]

# Fuzzing: a bounded run by default, so CI stays fast; HYPOTHESIS_PROFILE=long for many more.
settings.register_profile("ci", max_examples=150, deadline=None)
settings.register_profile("long", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module", params=KINDS)
def kind(request) -> str:
    """The server.cpp kind a module's real servers are of: every generation, unless the test
    narrows it (``tests/e2e/marks.py``) to the ones its claim needs."""
    return request.param


@pytest.fixture
def runtime(tmp_path_factory) -> Runtime:
    """Apps built in the tests keep their usage files and server logs out of the user's
    ~/.cache (the proxies the tests start as processes are told where to put them)."""
    return Runtime(cache_dir=str(tmp_path_factory.getbasetemp() / "cache"), environ=os.environ)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def make_client(backend, runtime, tmp_path):
    """Build a test client for an app with the given settings over ``backend``; each app's
    router is closed after the test (a replica it took out of rotation is probed no more)."""
    apps = []

    def make(fake=None, pulls=None, **settings):
        settings.setdefault("usage_db", str(tmp_path / "usage.sqlite3"))
        settings.setdefault("responses_db", str(tmp_path / "responses.sqlite3"))
        settings.setdefault("exchanges_db", str(tmp_path / "exchanges.sqlite3"))
        settings.setdefault("files_dir", str(tmp_path / "files"))  # no batch of another test's
        apps.append(
            create_app(Settings.of(**settings), runtime, backend=fake or backend, pulls=pulls)
        )
        return apps[-1].test_client()

    yield make
    for app in apps:
        app.extensions["batches"].runner.stop()
        app.extensions["proxy"].router.close()


@pytest.fixture
def client(make_client):
    return make_client()


def read_events(body: bytes) -> list:
    """Split an SSE body into decoded events; ``[DONE]`` stays a string."""
    assert body.endswith(b"\n\n"), body[-50:]
    events = []
    for block in body.decode("utf-8").split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events
