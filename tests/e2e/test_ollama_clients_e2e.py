"""Ollama's clients through the proxy on current llama-server and the bundled engine: tool
calls with the ``ollama`` Python client and ``langchain-ollama``'s ``ChatOllama``, the
``ollama`` npm library under Node, the calls an IDE makes when it adds an Ollama provider
(through a keys file), and ``keep_alive`` unloading a model whose server the proxy runs.

The tool-calling model writes Qwen3's own calls under Qwen3's real template (see
:mod:`.families`); SmolLM2's template has no tools.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_ollama import ChatOllama

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .agents import agents_folder
from .families import FAMILIES, PARIS, RESULT_ANSWER, TOOLS, TRIGGERS
from .llama_server import LlamaServer
from .managed import ADMIN, NO_UPSTREAM, Program, gone, servers_of
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


@pytest.fixture(scope="module", params=["llamacpp", "bundled"])
def proxy(request, logs, tmp_path_factory):
    """qwen3 (its template has tool syntax) and smol (its has none) on servers of one
    engine, behind a keys file."""
    engine = request.param
    folder = tmp_path_factory.mktemp(f"ollama-clients-{engine}")
    qwen3 = write_scripted_gguf(
        folder / "qwen3.gguf", QWEN3.scripts(), QWEN3.tokens, QWEN3.chat_template(), name="qwen3"
    )
    with (
        LlamaServer(
            qwen3, logs / f"ollama-qwen3-{engine}.log", kind=engine, parallel=1, ctx_size=8192
        ) as caller,
        LlamaServer(smollm2(), logs / f"ollama-smol-{engine}.log", kind=engine, parallel=1) as smol,
    ):
        (folder / "models.toml").write_text(
            f'[models.qwen3]\nupstreams = ["{caller.url}"]\n'
            f'[models.smol]\nupstreams = ["{smol.url}"]\n'
        )
        (folder / "keys.toml").write_text(KEYS)
        with ProxyProcess(
            caller.url,
            logs / f"proxy-ollama-clients-{engine}.log",
            args=["--config", str(folder / "models.toml"), "--keys", str(folder / "keys.toml")],
        ) as running:
            yield running


def calls_of(message) -> list:
    return [
        (call.function.name, dict(call.function.arguments)) for call in message.tool_calls or ()
    ]


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


def test_the_npm_library_lists_and_streams_a_chat(proxy):
    script = f"""
const {{ Ollama }} = require('ollama');
const client = new Ollama({{ host: {json.dumps(proxy.url)},
                            headers: {{ Authorization: 'Bearer {KEY}' }} }});
(async () => {{
  const listed = await client.list();
  let text = '', done = null;
  for await (const part of await client.chat({{ model: 'qwen3:latest', stream: true,
      messages: [{{ role: 'user', content: 'Hello?' }}] }})) {{
    text += part.message.content;
    if (part.done) done = part.done_reason;
  }}
  console.log(JSON.stringify({{ names: listed.models.map(m => m.name), text, done }}));
}})().catch(error => {{ console.error(error); process.exit(1); }});
"""
    node_path = os.path.join(agents_folder(), "node_modules")
    result = subprocess.run(
        ["node", "-e", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": node_path},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["names"] == ["qwen3:latest", "smol:latest"]
    assert answer["text"] == QWEN3.expected["answer"].content and answer["done"] == "stop"


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


@pytest.fixture(params=["llama-server", "bundled"])
def managed_program(request) -> Program:
    from .llama_server import find_server

    if request.param == "bundled":
        return Program(("--llama-server", "bundled"), {})
    binary = find_server("llamacpp")
    return Program(("--llama-server", str(binary.path)), binary.env)


def test_keep_alive_zero_unloads_a_model_the_proxy_runs(managed_program, model, logs, tmp_path):
    models = tmp_path / "models.toml"
    models.write_text(f'[models.tiny]\nmodel = "{model}"\nargs = ["-np", "1", "-c", "2048"]\n')
    name = managed_program.args[-1].rpartition("/")[2]
    with ProxyProcess(
        NO_UPSTREAM,
        logs / f"proxy-ollama-keep-alive-{name}.log",
        env=managed_program.env or None,
        args=[
            "--config",
            str(models),
            "--admin-key",
            ADMIN,
            "--log-dir",
            str(logs / f"servers-ollama-keep-alive-{name}"),
            *managed_program.args,
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
        wait_for(lambda: gone(server.pid), "the server to stop after the answer")
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
