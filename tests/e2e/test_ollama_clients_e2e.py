"""Ollama's clients through the proxy on current llama-server: tool calls with the ``ollama``
Python client and ``langchain-ollama``'s ``ChatOllama``, the calls an IDE makes when it adds
an Ollama provider (through a keys file), and ``keep_alive`` unloading a model whose server
the proxy runs, on llama-server and the bundled engine (the ``ollama`` npm library is
``test_ollama_js_e2e.py``'s).

The tool-calling model writes Qwen3's own calls under Qwen3's real template (see
:mod:`.families`); SmolLM2's template has no tools.
"""

from __future__ import annotations

import pytest
import requests
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_ollama import ChatOllama

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .families import FAMILIES, PARIS, RESULT_ANSWER, TOOLS, TRIGGERS
from .llama_server import LlamaServer
from .managed import ADMIN, NO_UPSTREAM, gone, servers_of
from .marks import BUNDLED, CLIENT, CURRENT, MANAGED, only
from .scriptedmodel import write_scripted_gguf
from .smollm2 import smollm2

pytestmark = pytest.mark.e2e

QWEN3 = next(family for family in FAMILIES if family.name == "qwen3")
KEY = "sk-ide"
KEYS = f"""
[[keys]]
name = "ide"
key = "{KEY}"
"""
ONE_CALL = f"{TRIGGERS['one_call']} What is the weather in Paris?"


@pytest.fixture(scope="module")
def proxy(kind, logs, tmp_path_factory):
    """qwen3 (its template has tool syntax) and smol (its has none) on servers of one
    kind, behind a keys file."""
    folder = tmp_path_factory.mktemp(f"ollama-clients-{kind}")
    qwen3 = write_scripted_gguf(
        folder / "qwen3.gguf", QWEN3.scripts(), QWEN3.tokens, QWEN3.chat_template(), name="qwen3"
    )
    with (
        LlamaServer(
            qwen3, logs / f"ollama-qwen3-{kind}.log", kind=kind, parallel=1, ctx_size=8192
        ) as caller,
        LlamaServer(smollm2(), logs / f"ollama-smol-{kind}.log", kind=kind, parallel=1) as smol,
    ):
        (folder / "models.toml").write_text(
            f'[models.qwen3]\nupstreams = ["{caller.url}"]\n'
            f'[models.smol]\nupstreams = ["{smol.url}"]\n'
        )
        (folder / "keys.toml").write_text(KEYS)
        with ProxyProcess(
            caller.url,
            logs / f"proxy-ollama-clients-{kind}.log",
            args=["--config", str(folder / "models.toml"), "--keys", str(folder / "keys.toml")],
        ) as running:
            yield running


def calls_of(message) -> list:
    return [
        (call.function.name, dict(call.function.arguments)) for call in message.tool_calls or ()
    ]


@only(CURRENT, why=CLIENT)
def test_tool_calls_whole_and_streamed(proxy):
    client = proxy.ollama(KEY)
    messages = [{"role": "user", "content": ONE_CALL}]
    whole = client.chat(model="qwen3", messages=messages, tools=list(TOOLS), stream=False)
    assert calls_of(whole.message) == [("get_weather", PARIS)]
    streamed = [
        call
        for chunk in client.chat(model="qwen3", messages=messages, tools=list(TOOLS), stream=True)
        for call in calls_of(chunk.message)
    ]
    assert streamed == [("get_weather", PARIS)]
    answered = client.chat(
        model="qwen3",
        tools=list(TOOLS),
        stream=False,
        messages=[
            *messages,
            whole.message,
            {"role": "tool", "tool_name": "get_weather", "content": f"Sunny {TRIGGERS['result']}"},
        ],
    )
    assert answered.message.content == RESULT_ANSWER


@only(CURRENT, why=CLIENT)
def test_langchain_chat_ollama_completes_a_tool_round_trip(proxy):
    chat = ChatOllama(
        model="qwen3",
        base_url=proxy.url,
        temperature=0,
        client_kwargs={"headers": {"Authorization": f"Bearer {KEY}"}},
        sync_client_kwargs={"transport": proxy.transport()},
    )
    tools = [tool["function"] for tool in TOOLS]
    bound = chat.bind_tools([{"type": "function", "function": tool} for tool in tools])
    question = HumanMessage(ONE_CALL)
    called = bound.invoke([question])
    assert [(call["name"], call["args"]) for call in called.tool_calls] == [("get_weather", PARIS)]
    result = ToolMessage(f"Sunny {TRIGGERS['result']}", tool_call_id=called.tool_calls[0]["id"])
    final = bound.invoke([question, called, result])
    assert final.content == RESULT_ANSWER


@only(CURRENT, why=CLIENT)
def test_what_an_ide_asks_when_it_adds_an_ollama_provider(proxy):
    """GET /api/version, GET /api/tags, POST /api/show for each model, then a chat: every call
    answers, and both models say they call tools (smol through the proxy's own way: its
    template has no tool syntax)."""
    headers = {"Authorization": f"Bearer {KEY}", "User-Agent": "GitHubCopilotChat/0.30"}
    assert requests.get(proxy.url + "/api/version", timeout=10).status_code == 401
    version = requests.get(proxy.url + "/api/version", headers=headers, timeout=10).json()
    assert tuple(map(int, version["version"].split("."))) >= (0, 6, 4)
    models = requests.get(proxy.url + "/api/tags", headers=headers, timeout=30).json()["models"]
    capabilities = {}
    for model in models:
        shown = requests.post(
            proxy.url + "/api/show", json={"model": model["model"]}, headers=headers, timeout=30
        ).json()
        info = shown["model_info"]
        assert info[f"{info['general.architecture']}.context_length"] > 0
        capabilities[model["model"]] = shown["capabilities"]
    assert "tools" in capabilities["qwen3:latest"] and "tools" in capabilities["smol:latest"]
    chat = requests.post(
        proxy.url + "/v1/chat/completions",
        headers=headers,
        timeout=60,
        json={
            "model": "smol:latest",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "Hi"}],
        },
    )
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"]


@only(CURRENT, BUNDLED, why=MANAGED)
def test_keep_alive_zero_unloads_a_model_the_proxy_runs(program, model, logs, tmp_path):
    models = tmp_path / "models.toml"
    models.write_text(f'[models.tiny]\nmodel = "{model}"\nargs = ["-np", "1", "-c", "2048"]\n')
    name = program.args[-1].rpartition("/")[2]
    with ProxyProcess(
        NO_UPSTREAM,
        logs / f"proxy-ollama-keep-alive-{name}.log",
        env=program.env or None,
        args=[
            "--config",
            str(models),
            "--admin-key",
            ADMIN,
            "--log-dir",
            str(logs / f"servers-ollama-keep-alive-{name}"),
            *program.args,
        ],
    ) as proxy:
        client = proxy.ollama()
        loaded = client.generate(model="tiny", prompt="")
        assert loaded.done_reason == "load" and len(servers_of(proxy)) == 1
        assert [model.model for model in client.ps().models] == ["tiny:latest"]
        (server,) = servers_of(proxy)
        answer = client.generate(
            model="tiny", prompt="Hi", keep_alive=0, options={"num_predict": 2}
        )
        assert answer.eval_count == 2
        wait_for(lambda: gone(server), "the server to stop after the answer")
        assert client.ps().models == []
        again = client.chat(
            model="tiny",
            messages=[{"role": "user", "content": "Hi"}],
            options={"num_predict": 2},
            keep_alive="10m",
        )
        assert again.eval_count == 2 and len(servers_of(proxy)) == 1
        (expiring,) = client.ps().models
        assert expiring.expires_at.year < 9999  # ten minutes from now, not for ever
        unloaded = client.generate(model="tiny", prompt="", keep_alive=0)
        assert unloaded.done_reason == "unload"
        wait_for(lambda: not servers_of(proxy), "the unloaded server to stop")
