"""The agent CLIs on models of the API backends: Claude Code in one session on a local model
(translated) and then on a Messages API server (its body passed on as it wrote it); Codex and
opencode on an OpenAI-compatible server. The servers are current llama-server with
``--api-key`` (its ``/v1/messages`` and its ``/v1``), the model one that answers a fixed
text and stops (:mod:`.stoppingmodel`)."""

from __future__ import annotations

import json

import pytest

from tests.processes import ProxyProcess

from . import agents
from .llama_server import LlamaServer
from .marks import CURRENT, on
from .stoppingmodel import ANSWER_TEXT, write_stopping_gguf

pytestmark = [pytest.mark.e2e, *on(CURRENT, why="each agent on the API backends, proven once")]

CONTEXT = 131072  # an agent's prompt is tens of thousands of tokens
SECRET = "sk-upstream-agents-51c2"
KEY = "sk-agents"
MODELS_FILE = """
[models.here]
upstreams = ["{local}"]

[models.cloud]
backend = "anthropic"
upstreams = ["{url}"]
upstream_model = "stopping"
upstream_key_env = "UPSTREAM_KEY"

[models.local-model]
backend = "openai"
upstreams = ["{url}/v1"]
upstream_model = "stopping"
upstream_key_env = "UPSTREAM_KEY"
drop_hosted_tools = true  # Codex asks for web search unless told not to
"""


@pytest.fixture(scope="module")
def proxy(kind, logs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("agents-upstreams")
    model = write_stopping_gguf(folder / "stopping.gguf")
    server_args = ["--flash-attn", "on"]
    with (
        LlamaServer(
            model,
            logs / "agents-upstream.log",
            kind=kind,
            parallel=1,
            ctx_size=CONTEXT,
            extra_args=[*server_args, "--api-key", SECRET, "--alias", "stopping"],
        ) as server,
        LlamaServer(
            model,
            logs / "agents-local.log",
            kind=kind,
            parallel=1,
            ctx_size=CONTEXT,
            extra_args=server_args,
        ) as local,  # fmt: skip
    ):
        (folder / "models.toml").write_text(MODELS_FILE.format(url=server.url, local=local.url))
        with ProxyProcess(
            server.url,
            logs / "proxy-agents-upstreams.log",
            args=[
                *("--config", str(folder / "models.toml"), "--api-key", KEY),
                *("--upstream-timeout", "600", "--capture", "on"),
            ],
            env={"UPSTREAM_KEY": SECRET},
        ) as running:
            yield running


def claude(proxy: ProxyProcess, cwd, *args: str) -> dict:
    result = agents.claude(proxy.url, KEY, cwd, *args, "--output-format", "json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


def test_claude_code_goes_on_in_one_session_from_a_local_model_to_a_messages_server(
    proxy, tmp_path
):
    first = claude(proxy, tmp_path, "-p", "Say hello.", "--model", "here")
    second = claude(proxy, tmp_path, "-p", "And again.", "--continue", "--model", "cloud")
    assert first["result"] == second["result"] == ANSWER_TEXT
    assert not first["is_error"] and not second["is_error"]
    turns = proxy.exchanges("?api=anthropic&limit=1000")
    here = [turn for turn in turns if turn["model"] == "here"]
    cloud = [turn for turn in turns if turn["model"] == "cloud"]
    print(json.dumps({"here": len(here), "cloud": len(cloud)}))
    assert here and cloud
    # on the Messages server, the body Claude Code wrote went on whole: its thinking,
    # cache marks, metadata and context management, and the first model's turn in its history
    for turn in cloud:
        assert turn["upstream_route"] == "/v1/messages"
        assert turn["upstream_body"] == {**turn["request"], "model": "stopping"}
    history = json.dumps(cloud[-1]["request"]["messages"])
    assert ANSWER_TEXT in history and "And again." in history
    assert SECRET not in proxy.log() and "Traceback" not in proxy.log()


def test_codex_answers_on_an_openai_compatible_server(proxy, tmp_path):
    """Codex as it comes: it asks for OpenAI's hosted web search, which this model leaves
    out (elsewhere it is a 400 naming it: tests/api/test_responses.py)."""
    result = agents.codex(proxy.url, KEY, tmp_path, "--ephemeral", "Say hello.", web_search=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert ANSWER_TEXT in result.stdout
    (turn, *_) = reversed(proxy.exchanges("?api=responses&limit=1000"))
    assert turn["model"] == "local-model" and turn["upstream_route"] == "/chat/completions"


def test_opencode_answers_on_an_openai_compatible_server(proxy, tmp_path):
    result = agents.opencode(proxy.url, KEY, tmp_path, "Say hello.")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert ANSWER_TEXT in result.stdout
    (turn, *_) = reversed(proxy.exchanges("?api=openai&limit=1000"))
    assert turn["model"] == "local-model" and turn["upstream_route"] == "/chat/completions"
