"""A second engine beside llama-server, as a team runs one: llama-cpp-python's server (a
FastAPI implementation of OpenAI's API, from PyPI, behind a key of its own) as an ``openai``
upstream, a current llama-server with a wider context as its ``context_fallbacks``.

Greedy chats through the proxy are the engine's own, whole and streamed; its streams tell
no usage, and are charged what the engine counts (its prompt, asked whole) and a token per
piece, marked estimated, on the answer and in the key's usage; a prompt too long for its
context (which the engine refuses in OpenAI's words whole, and by ending the stream empty)
is answered by the context fallback, whole and streamed, the header naming it."""

from __future__ import annotations

import json

import anthropic
import pytest
import requests

from tests.processes import ProxyProcess

from .engines import LlamaCppPythonServer
from .llama_server import LlamaServer
from .marks import CURRENT, on
from .smollm2 import smollm2

ENGINE = "llama-cpp-python's server beside a current llama-server, its context fallback"
pytestmark = [pytest.mark.e2e, *on(CURRENT, why=ENGINE)]

SECRET = "sk-engine-51d0c2"  # the engine's key: the proxy's comes from the environment
CONTEXT = 1024  # the engine's context: the fallback's is four times as long
MODELS = """
[models.engine]
backend = "openai"
upstreams = ["{engine}/v1"]
upstream_model = "smol"
upstream_key_env = "ENGINE_KEY"
context_fallbacks = ["wide"]

[models.wide]
upstreams = ["{wide}"]
"""
KEYS = '[[keys]]\nname = "team"\nkey = "sk-team"\n'
TEAM = {"Authorization": "Bearer sk-team"}
ADMIN = {"Authorization": "Bearer sk-admin"}
QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]
GREEDY = {"temperature": 0, "max_tokens": 12}
TOO_LONG = [{"role": "user", "content": "word " * 1500}]  # ~1,500 tokens: more than 1,024


@pytest.fixture(scope="module")
def proxy(kind, logs, tmp_path_factory):
    work = tmp_path_factory.mktemp("second-engine")
    model = smollm2()
    (work / "keys.toml").write_text(KEYS)
    with (
        LlamaCppPythonServer(
            model, logs / "llama-cpp-python.log", alias="smol", key=SECRET, ctx_size=CONTEXT
        ) as engine,  # fmt: skip
        LlamaServer(
            model, logs / "second-engine-wide.log", kind=kind, parallel=1, ctx_size=4 * CONTEXT
        ) as wide,  # fmt: skip
    ):
        (work / "models.toml").write_text(MODELS.format(engine=engine.url, wide=wide.url))
        args = ["--config", str(work / "models.toml"), "--keys", str(work / "keys.toml"),
                "--admin-key", "sk-admin", "--log-dir", str(logs)]  # fmt: skip
        with ProxyProcess(
            wide.url, logs / "proxy-second-engine.log", args=args, env={"ENGINE_KEY": SECRET}
        ) as proxy:
            proxy.engine = engine
            yield proxy


def chat(proxy, body: dict) -> requests.Response:
    return requests.post(
        proxy.url + "/v1/chat/completions", json=body, headers=TEAM, timeout=120,
        stream=bool(body.get("stream")),
    )  # fmt: skip


def streamed(reply: requests.Response) -> list:
    """The data events of a stream, read."""
    with reply:
        return [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith(b"data: {")]


def text_of(events: list) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices")
    )


def used(proxy) -> tuple:
    rows = requests.get(proxy.url + "/admin/usage", headers=ADMIN, timeout=30).json()["usage"]
    return sum(row["prompt_tokens"] for row in rows), sum(row["completion_tokens"] for row in rows)


def test_greedy_chats_are_the_engines_own_whole_and_streamed(proxy):
    own = proxy.engine.chat({"model": "smol", "messages": QUESTION, **GREEDY}).json()
    reply = chat(proxy, {"model": "engine", "messages": QUESTION, **GREEDY})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["choices"][0]["message"]["content"] == own["choices"][0]["message"]["content"]
    assert answer["model"] == "engine" and answer["usage"] == own["usage"]  # told: no header
    assert "x-oai-proxy-usage" not in reply.headers
    own_stream = streamed(proxy.engine.chat({"model": "smol", "messages": QUESTION,
                                             "stream": True, **GREEDY}))  # fmt: skip
    events = streamed(chat(proxy, {"model": "engine", "messages": QUESTION, "stream": True,
                                   **GREEDY}))  # fmt: skip
    assert text_of(events) == text_of(own_stream) == own["choices"][0]["message"]["content"]


def test_a_stream_without_usage_is_charged_the_engines_count(proxy):
    own = proxy.engine.chat({"model": "smol", "messages": QUESTION, **GREEDY}).json()["usage"]
    assert "usage" not in streamed(proxy.engine.chat(
        {"model": "smol", "messages": QUESTION, "stream": True, **GREEDY,
         "stream_options": {"include_usage": True}}))[-1]  # the engine tells none  # fmt: skip
    before = used(proxy)
    asked = {"stream": True, "stream_options": {"include_usage": True}, **GREEDY}
    events = streamed(chat(proxy, {"model": "engine", "messages": QUESTION, **asked}))
    usage = events[-1]["usage"]
    assert usage["x-oai-proxy-usage"] == "estimated"
    assert usage["prompt_tokens"] == own["prompt_tokens"]  # the engine's own count
    assert (
        abs(usage["completion_tokens"] - own["completion_tokens"]) <= 0.1 * own["completion_tokens"]
    )
    after = used(proxy)
    assert (after[0] - before[0], after[1] - before[1]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )  # what the key is charged


def test_a_messages_stream_from_the_engine_says_what_it_made(proxy):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-team")
    with client.messages.stream(model="engine", max_tokens=12, messages=QUESTION) as stream:
        message = stream.get_final_message()
    client.close()
    assert message.usage.output_tokens > 0 and message.usage.input_tokens > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_prompt_too_long_for_the_engine_is_answered_by_its_context_fallback(proxy, stream):
    refused = proxy.engine.chat({"model": "smol", "messages": TOO_LONG, "max_tokens": 4})
    assert (
        refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded"
    )
    reply = chat(proxy, {"model": "engine", "messages": TOO_LONG, "max_tokens": 4,
                         "stream": stream})  # fmt: skip
    assert reply.status_code == 200
    assert reply.headers["x-oai-proxy-served-model"] == "wide"
    if stream:
        events = streamed(reply)
        assert events[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    else:
        assert reply.json()["usage"]["prompt_tokens"] > CONTEXT
