"""The ``ollama`` npm client under Node through the proxy's Ollama API, with a key: it lists
the models, streams an answer, and carries a tool call round trip, the call read whole and
streamed (see :mod:`.libraries`)."""

from __future__ import annotations

import pytest

from . import libraries
from .families import ANSWER, PARIS, RESULT_ANSWER
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.ollama_js, *on(CURRENT, why=CLIENT)]


@pytest.fixture(scope="module")
def served(kind, logs, tmp_path_factory):
    with libraries.served(kind, tmp_path_factory.mktemp("ollama-js"), logs, "ollama-js") as running:
        yield running


def test_the_ollama_npm_client_lists_streams_and_calls_a_tool(served, tmp_path):
    proxy, tap = served
    said = libraries.node("ollama.js", tap, tmp_path)
    assert said == {
        "models": ["qwen3:latest"],
        "streamed": ANSWER,
        "calls": [["get_weather", PARIS]],
        "streamedCalls": [["get_weather", PARIS]],
        "answer": RESULT_ANSWER,
    }
    assert tap.paths() == ["/api/tags", "/api/chat", "/api/chat", "/api/chat", "/api/chat"]
    assert [tapped.streamed for tapped in tap.to("/api/chat")] == [True, False, True, False]
    assert len(libraries.tool_round_trip(tap, "/api/chat")) == 3
    libraries.keyed(tap)
    assert "Traceback" not in proxy.log()
