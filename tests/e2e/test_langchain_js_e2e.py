"""LangChain JS (``@langchain/openai``'s ``ChatOpenAI``) under Node through the proxy's OpenAI
API, with a key: it streams an answer, and with ``bindTools`` carries a tool call round trip,
the call read whole and from the stream's deltas (see :mod:`.libraries`). ``ChatOpenAI``
lists no models."""

from __future__ import annotations

import pytest

from . import libraries
from .families import ANSWER, PARIS, RESULT_ANSWER
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.langchain_js, *on(CURRENT, why=CLIENT)]


@pytest.fixture(scope="module")
def served(kind, logs, tmp_path_factory):
    with libraries.served(
        kind, tmp_path_factory.mktemp("langchain-js"), logs, "langchain-js"
    ) as running:
        yield running


def test_langchain_js_streams_and_carries_a_tool_round_trip(served, tmp_path):
    proxy, tap = served
    said = libraries.node("langchain.js", tap, tmp_path)
    assert said == {
        "streamed": ANSWER,
        "calls": [["get_weather", PARIS]],
        "streamedCalls": [["get_weather", PARIS]],
        "answer": RESULT_ANSWER,
    }
    chats = tap.to("/v1/chat/completions")
    assert tap.paths() == ["/v1/chat/completions"] * 4
    assert [tapped.streamed for tapped in chats] == [True, False, True, False]
    assert chats[0].body["stream_options"] == {"include_usage": True}
    assert len(libraries.tool_round_trip(tap, "/v1/chat/completions")) == 3
    libraries.keyed(tap)
    assert "Traceback" not in proxy.log()
