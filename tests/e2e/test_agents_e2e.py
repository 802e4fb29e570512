"""The real agent CLIs (from npm) in front of the proxy, headless, on real servers: Claude
Code (Anthropic's Messages API) and Codex CLI (OpenAI's Responses API).

The model answers a fixed text and stops (see :mod:`.stoppingmodel`); an agent's prompt is
tens of thousands of tokens, so the server gets a context for it.
"""

from __future__ import annotations

import json

import pytest

from tests.processes import ProxyProcess

from . import agents
from .llama_server import LlamaServer
from .marks import only
from .stoppingmodel import ANSWER_TEXT, CHAT_TEMPLATE, write_stopping_gguf

pytestmark = pytest.mark.e2e

CONTEXT = 131072
# on current llama-server, the cache tests' sessions print the answer too
OLDEST = "the oldest kind bounds the old ones; current llama-server's runs are the cache tests'"


@pytest.fixture(scope="module")
def stopping_model(tmp_path_factory):
    return write_stopping_gguf(tmp_path_factory.mktemp("stopping") / "stopping.gguf")


@pytest.fixture(scope="module")
def proxy(stopping_model, logs, kind, tmp_path_factory):
    template = tmp_path_factory.mktemp("template") / "chatml.jinja"
    template.write_text(CHAT_TEMPLATE)
    with (
        LlamaServer(
            stopping_model,
            logs / f"claude-{kind}.log",
            kind=kind,
            parallel=1,
            ctx_size=CONTEXT,
            extra_args=["--flash-attn", "on"] if kind == "llamacpp" else [],
        ) as server,
        ProxyProcess(
            server.url,
            logs / f"proxy-claude-{kind}.log",
            args=[
                "--chat-template",
                str(template),
                "--api-key",
                "sk-claude",
                "--upstream-timeout",
                "600",
                "--capture",
                "on",
            ],
        ) as running,
    ):
        yield running


def claude(proxy: ProxyProcess, cwd, *args: str):
    return agents.claude(proxy.url, "sk-claude", cwd, *args, "--output-format", "json")


@only("powerinfer", why=OLDEST)
def test_claude_code_prints_the_answer(proxy, tmp_path):
    result = claude(proxy, tmp_path, "-p", "Say hello.", "--model", "local-model")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["result"] == ANSWER_TEXT
    assert not report["is_error"]
    assert "Traceback" not in proxy.log()


@only("llamacpp", why="the old kinds keep their prompt cache off unless asked (cache_prompt)")
def test_later_turns_and_sessions_read_the_prompt_from_the_cache(proxy, tmp_path):
    first = json.loads(claude(proxy, tmp_path, "-p", "Say hello.", "--model", "local-model").stdout)
    second = json.loads(
        claude(proxy, tmp_path, "-p", "And again.", "--continue", "--model", "local-model").stdout
    )
    third = json.loads(
        claude(proxy, tmp_path, "-p", "Once more.", "--continue", "--model", "local-model").stdout
    )
    other = json.loads(
        claude(proxy, tmp_path, "-p", "Something else entirely.", "--model", "local-model").stdout
    )  # a new session
    print(
        json.dumps(
            {
                "first": first["usage"],
                "second": second["usage"],
                "third": third["usage"],
                "other": other["usage"],
            }
        )
    )
    prompt = first["usage"]["input_tokens"] + first["usage"]["cache_read_input_tokens"]
    assert first["result"] == second["result"] == third["result"] == other["result"] == ANSWER_TEXT
    assert not any(report["is_error"] for report in (first, second, third, other))
    assert second["usage"]["cache_read_input_tokens"] >= prompt
    second_prompt = second["usage"]["input_tokens"] + second["usage"]["cache_read_input_tokens"]
    assert third["usage"]["cache_read_input_tokens"] >= second_prompt
    assert other["usage"]["cache_read_input_tokens"] >= 0.75 * prompt  # all but its messages
    # the inspector links the session's turns and shows where each left the cache before
    turns = proxy.exchanges("?api=anthropic&limit=1000")[
        -4:
    ]  # this test's (the module's proxy is shared)
    print(json.dumps([(t["id"], t["previous"], t["divergence"]) for t in turns], indent=1))
    assert [turn["raw"] for turn in turns] == [ANSWER_TEXT] * 4  # as the model wrote it
    assert [turn["previous"] for turn in turns[1:3]] == [turns[0]["id"], turns[1]["id"]]
    for turn in turns[1:3]:  # each went on from all its turn before left in the cache
        assert turn["divergence"]["reused_all"] and turn["divergence"]["evaluated_tokens"] < 200
    assert turns[3]["previous"] is None  # a new session: a conversation of its own
    assert "Traceback" not in proxy.log()


def codex(proxy: ProxyProcess, cwd, *args: str):
    return agents.codex(proxy.url, "sk-claude", cwd, *args)


@only("powerinfer", why=OLDEST)
def test_codex_prints_the_answer(proxy, tmp_path):
    result = codex(proxy, tmp_path, "--ephemeral", "Say hello.")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert ANSWER_TEXT in result.stdout
    assert "Traceback" not in proxy.log()


@only("llamacpp", why="the old kinds keep their prompt cache off unless asked (cache_prompt)")
def test_a_codex_threads_next_turn_reads_its_prompt_from_the_cache(proxy, tmp_path):
    first = codex(proxy, tmp_path, "--json", "Say hello.")
    second = codex(proxy, tmp_path, "--json", "resume", "--last", "And again.")
    usages = [turn_usage(result) for result in (first, second)]
    print(json.dumps(usages))
    assert ANSWER_TEXT in first.stdout and ANSWER_TEXT in second.stdout
    assert usages[1]["cached_input_tokens"] >= usages[0]["input_tokens"]
    turns = proxy.exchanges("?api=responses&limit=1000")[-2:]
    print(json.dumps([(t["id"], t["previous"], t["divergence"]) for t in turns], indent=1))
    assert turns[1]["previous"] == turns[0]["id"] and turns[1]["divergence"]["reused_all"]
    assert [turn["raw"] for turn in turns] == [ANSWER_TEXT] * 2
    assert "Traceback" not in proxy.log()


def turn_usage(result) -> dict:
    """The usage of a ``codex exec --json`` run's turn."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    (done,) = [event for event in events if event.get("type") == "turn.completed"]
    return done["usage"]
