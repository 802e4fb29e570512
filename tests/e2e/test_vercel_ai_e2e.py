"""The Vercel AI SDK (``ai`` with ``@ai-sdk/openai-compatible``) under Node through the proxy's
OpenAI API, with a key: ``streamText`` streams an answer; ``generateText``, then
``streamText`` (the call read from the stream's deltas), run the tool the model calls and send
its result back until the model answers (see :mod:`.libraries`). The provider lists no
models."""

from __future__ import annotations

import pytest

from . import libraries
from .families import ANSWER, PARIS, RESULT_ANSWER
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.vercel_ai, *on(CURRENT, why=CLIENT)]


@pytest.fixture(scope="module")
def served(kind, logs, tmp_path_factory):
    with libraries.served(kind, tmp_path_factory.mktemp("vercel-ai"), logs, "vercel-ai") as running:
        yield running


def test_the_vercel_ai_sdk_streams_and_runs_the_models_tool(served, tmp_path):
    proxy, tap = served
    said = libraries.node("vercel-ai.js", tap, tmp_path)
    assert said == {
        "streamed": ANSWER,
        "calls": [["get_weather", PARIS]] * 2,
        "answer": RESULT_ANSWER,
        "streamedAnswer": RESULT_ANSWER,
        "usage": True,
    }
    chats = tap.to("/v1/chat/completions")
    assert tap.paths() == ["/v1/chat/completions"] * 5
    assert [tapped.streamed for tapped in chats] == [True, False, False, True, True]
    assert chats[0].body["stream_options"] == {"include_usage": True}
    assert len(libraries.tool_round_trip(tap, "/v1/chat/completions")) == 4
    libraries.keyed(tap)
    assert "Traceback" not in proxy.log()
