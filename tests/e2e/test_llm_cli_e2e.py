"""Simon Willison's ``llm`` (its own virtual environment, as ``.ci/clients.sh`` makes it)
through the proxy's OpenAI API: the model in its ``extra-openai-models.yaml``, the key set
with ``llm keys set``; it streams an answer, and with ``--functions`` runs the tool the model
calls and sends its result back until the model answers (see :mod:`.libraries`). ``llm
models`` lists the models of that file, asking no server."""

from __future__ import annotations

import pytest

from . import libraries
from .families import ANSWER, RESULT_ANSWER
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.llm_cli, *on(CURRENT, why=CLIENT)]

FUNCTIONS = f"""
def get_weather(city: str) -> str:
    "The weather in a city now"
    return {libraries.RESULT!r} if city == "Paris" else "Unknown"
"""


@pytest.fixture(scope="module")
def served(kind, logs, tmp_path_factory):
    with libraries.served(kind, tmp_path_factory.mktemp("llm"), logs, "llm") as running:
        yield running


def test_llm_streams_and_runs_the_models_tool(served, tmp_path):
    proxy, tap = served
    user = tmp_path / "llm"
    user.mkdir()
    (user / "extra-openai-models.yaml").write_text(f"""\
- model_id: {libraries.MODEL}
  model_name: {libraries.MODEL}
  api_base: "{tap.url}/v1"
  api_key_name: local-proxy
  supports_tools: true
""")
    env = {"LLM_USER_PATH": str(user)}

    def llm(*args: str):
        result = libraries.run([str(libraries.program_of("llm", "llm")), *args], tmp_path, env)
        print(result.stdout[-3000:], result.stderr[-3000:])
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    llm("keys", "set", "local-proxy", "--value", libraries.KEY)
    assert f"OpenAI Chat: {libraries.MODEL}\n" in llm("models").stdout
    assert llm("-m", libraries.MODEL, "Hello?").stdout == ANSWER + "\n"
    called = llm("-m", libraries.MODEL, "--functions", FUNCTIONS, "--td", libraries.ONE_CALL)
    assert called.stdout == RESULT_ANSWER + "\n"
    assert "Tool call: get_weather({'city': 'Paris'})" in called.stderr  # --td shows it
    chats = tap.to("/v1/chat/completions")
    assert tap.paths() == ["/v1/chat/completions"] * 3
    assert [tapped.streamed for tapped in chats] == [True, True, True]
    assert len(libraries.tool_round_trip(tap, "/v1/chat/completions")) == 2
    libraries.keyed(tap)
    assert "Traceback" not in proxy.log()
