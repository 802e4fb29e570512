"""LlamaIndex's ``OpenAILike`` (through the proxy's OpenAI API) and ``Ollama`` (through its
Ollama API) classes, in their own virtual environment as ``.ci/clients.sh`` makes it, with a
key: each streams an answer and carries a tool call round trip with a ``FunctionTool``;
``Ollama`` reads the model's context length from ``/api/show`` (see :mod:`.libraries`).
Neither class lists models."""

from __future__ import annotations

import pytest

from . import libraries
from .families import ANSWER, PARIS, RESULT_ANSWER
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.llamaindex, *on(CURRENT, why=CLIENT)]


@pytest.fixture(scope="module")
def served(kind, logs, tmp_path_factory):
    with libraries.served(
        kind, tmp_path_factory.mktemp("llamaindex"), logs, "llamaindex"
    ) as running:
        yield running


def test_llamaindex_streams_and_carries_a_tool_round_trip(served, tmp_path):
    proxy, tap = served
    said = libraries.python("llamaindex", "llamaindex_client.py", tap, tmp_path)
    called = {"streamed": ANSWER, "calls": [["get_weather", PARIS]], "answer": RESULT_ANSWER}
    assert said == {"openai_like": called, "ollama": called}
    openai = tap.to("/v1/chat/completions")
    assert [tapped.streamed for tapped in openai] == [True, False, False]
    assert len(libraries.tool_round_trip(tap, "/v1/chat/completions")) == 2
    assert [tapped.body["model"] for tapped in tap.to("/api/show")] == [libraries.MODEL]
    ollama = tap.to("/api/chat")
    assert [tapped.streamed for tapped in ollama] == [True, False, False]
    assert len(libraries.tool_round_trip(tap, "/api/chat")) == 2
    libraries.keyed(tap)
    assert "Traceback" not in proxy.log()
