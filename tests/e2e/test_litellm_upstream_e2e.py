"""LiteLLM's proxy (from PyPI, in LiteLLM's own virtual environment) as an OpenAI-compatible
upstream: a model of ``backend = "openai"`` on it, behind its master key, in front of
llama-server. The OpenAI SDK's whole answer, stream and tool round trip come through both
gateways; the master key is shown nowhere the proxy writes."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests

from tests.polling import wait_for
from tests.processes import ProxyProcess, free_port

from .families import ANSWER, PARIS, RESULT_ANSWER
from .libraries import MODEL, ONE_CALL, QWEN3, RESULT, WEATHER, litellm_proxy
from .llama_server import LlamaServer
from .marks import CURRENT, on
from .scriptedmodel import write_scripted_gguf

UPSTREAM = "LiteLLM's proxy as an OpenAI-compatible upstream, in front of current llama-server"
pytestmark = [pytest.mark.e2e, pytest.mark.litellm, *on(CURRENT, why=UPSTREAM)]

MASTER_KEY = "sk-litellm-master-5d2e8b"
LITELLM_CONFIG = """
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {url}/v1
      api_key: unused
general_settings:
  master_key: {key}
"""
MODELS_FILE = """
[models.gateway]
backend = "openai"
upstreams = ["{url}/v1"]
upstream_model = "{model}"
upstream_key_env = "LITELLM_KEY"
"""


def up(url: str) -> bool:
    try:
        return requests.get(url + "/health/liveliness", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def proxy(kind, logs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("litellm-upstream")
    model = write_scripted_gguf(
        folder / "qwen3.gguf", QWEN3.scripts(), QWEN3.tokens, QWEN3.chat_template(), name=MODEL
    )
    with LlamaServer(model, logs / "litellm-upstream-server.log", kind=kind, parallel=2) as server:
        config = folder / "litellm.yaml"
        config.write_text(LITELLM_CONFIG.format(model=MODEL, url=server.url, key=MASTER_KEY))
        port = free_port()
        gateway_url = f"http://127.0.0.1:{port}"
        with open(logs / "litellm-upstream.log", "ab") as log:
            gateway = subprocess.Popen(
                [*litellm_proxy(), "--config", str(config)]
                + ["--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            )
        try:
            wait_for(lambda: up(gateway_url), "LiteLLM's proxy to serve", 120)
            (folder / "models.toml").write_text(MODELS_FILE.format(url=gateway_url, model=MODEL))
            with ProxyProcess(
                server.url,
                logs / "proxy-litellm-upstream.log",
                args=["--config", str(folder / "models.toml")],
                env={"LITELLM_KEY": MASTER_KEY},
            ) as running:
                yield running
        finally:
            gateway.terminate()
            gateway.wait(30)


def test_a_whole_answer_and_a_stream_through_both_gateways(proxy):
    client = proxy.sdk()
    question = [{"role": "user", "content": "Hello?"}]
    whole = client.chat.completions.create(model="gateway", messages=question)
    assert (whole.model, whole.choices[0].message.content) == ("gateway", ANSWER)
    assert whole.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="gateway", messages=question, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_a_tool_round_trip_through_both_gateways(proxy):
    client = proxy.sdk()
    question = {"role": "user", "content": ONE_CALL}
    called = client.chat.completions.create(model="gateway", messages=[question], tools=[WEATHER])
    message = called.choices[0].message
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("get_weather", PARIS)
    ]
    answered = client.chat.completions.create(
        model="gateway",
        tools=[WEATHER],
        messages=[
            question,
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": RESULT},
        ],
    )
    assert answered.choices[0].message.content == RESULT_ANSWER
    assert MASTER_KEY not in proxy.log()
