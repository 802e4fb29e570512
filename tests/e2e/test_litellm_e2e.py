"""LiteLLM as a client (its own virtual environment, as ``.ci/clients.sh`` makes it) through
the proxy, with a key: ``openai/`` models through the OpenAI API and ``ollama_chat/`` ones
through the Ollama API each list the models, stream an answer and carry a tool call round
trip, the call read whole and from the stream; an ``ollama/`` model streams through
``/api/generate`` (see :mod:`.libraries`)."""

from __future__ import annotations

import pytest

from . import libraries
from .families import ANSWER, PARIS, RESULT_ANSWER
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.litellm, *on(CURRENT, why=CLIENT)]


@pytest.fixture(scope="module")
def served(kind, logs, tmp_path_factory):
    with libraries.served(kind, tmp_path_factory.mktemp("litellm"), logs, "litellm") as running:
        yield running


def test_litellm_lists_streams_and_carries_a_tool_round_trip(served, tmp_path):
    proxy, tap = served
    said = libraries.python(
        "litellm", "litellm_client.py", tap, tmp_path, {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    )
    called = {
        "streamed": ANSWER,
        "calls": [["get_weather", PARIS]],
        "streamed_calls": [["get_weather", PARIS]],
        "answer": RESULT_ANSWER,
    }
    assert said == {
        "models": {"openai": ["qwen3"], "ollama": ["ollama/qwen3:latest"]},
        "openai": called,
        "ollama_chat": called,
        "ollama": {"streamed": ANSWER},
    }
    assert tap.paths("GET") == ["/v1/models", "/api/tags"]
    openai = tap.to("/v1/chat/completions")
    assert [tapped.streamed for tapped in openai] == [True, False, True, False]
    assert len(libraries.tool_round_trip(tap, "/v1/chat/completions")) == 3
    ollama = tap.to("/api/chat")
    assert [tapped.streamed for tapped in ollama] == [True, False, True, False]
    assert len(libraries.tool_round_trip(tap, "/api/chat")) == 3
    assert [tapped.streamed for tapped in tap.to("/api/generate")] == [True]
    # after an Ollama answer LiteLLM's cost lookup may ask /api/show with the answer's URL and
    # no key; refused, LiteLLM goes on without the model's details
    libraries.keyed(tap, keyless=("/api/show",))
    assert "Traceback" not in proxy.log()
