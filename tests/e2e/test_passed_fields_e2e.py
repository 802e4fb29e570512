"""What an engine reads reaches it: a chat client's body goes to an ``openai`` upstream as it
came (an engine of the tests' own that keeps every body it is sent,
``servers/echo_upstream.py``): each of OpenAI's chat fields, vLLM's and SGLang's extensions
and a field no API defines arrive unchanged, sent raw and through the ``openai`` SDK's
``extra_body``; the proxy's own fields do not; a stream the engine tells no usage of is
charged what the engine counts of its prompt, and says it is estimated."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.processes import ProxyProcess

from .refusing import EchoServer

pytestmark = [pytest.mark.e2e]

MODELS = """
[models.engine]
backend = "openai"
upstreams = ["{echo}/v1"]
upstream_model = "echo-1"
"""
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
# each field as a client sends it (those that need another go with it)
FIELDS = [
    {"frequency_penalty": 0.5},
    {"presence_penalty": -0.5},
    {"logit_bias": {"50256": -100}},
    {"logprobs": True, "top_logprobs": 2},
    {"max_completion_tokens": 7},
    {"max_tokens": 7},
    {"metadata": {"team": "search", "run": "42"}},
    {"modalities": ["text"]},
    {"tools": [WEATHER], "parallel_tool_calls": False},
    {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "weather"}}},
    {"prediction": {"type": "content", "content": "Paris"}},
    {"prompt_cache_key": "user-1234"},
    {"reasoning_effort": "low"},
    {
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": False,
                },
            },
        }
    },  # fmt: skip
    {"safety_identifier": "hash-of-user"},
    {"seed": 11},
    {"service_tier": "flex"},
    {"stop": ["\n\n", "END"]},
    {"store": True},
    {"temperature": 0.3, "top_p": 0.9},
    {"user": "alice@example.com"},
    {"verbosity": "low"},
    # vLLM's and SGLang's own
    {"repetition_penalty": 1.1},
    {"top_k": 20, "min_p": 0.05},
    {"guided_json": {"type": "object"}},
    {"guided_choice": ["yes", "no"]},
    {"structured_outputs": {"choice": ["yes", "no"]}},
    {"min_tokens": 2, "ignore_eos": False},
    {"skip_special_tokens": False, "include_stop_str_in_output": True},
    {"chat_template_kwargs": {"enable_thinking": False}},
    {"add_generation_prompt": True, "continue_final_message": False},
    {"stop_token_ids": [2]},
    {"truncate_prompt_tokens": 512},
    {"cache_salt": "tenant-a"},
    {"kv_transfer_params": {"do_remote_prefill": False}},
    {"regex": "(yes|no)"},
    {"separate_reasoning": True},
    # a field newer than the proxy
    {"field_of_tomorrow": {"nested": [1, "two", None]}},
]
MESSAGES = [{"role": "user", "content": "Where is the Eiffel tower"}]


@pytest.fixture(scope="module")
def proxy(logs, tmp_path_factory):
    work = tmp_path_factory.mktemp("passed-fields")
    with EchoServer(logs / "echo-upstream.log") as echo:
        (work / "models.toml").write_text(MODELS.format(echo=echo.url))
        args = ["--config", str(work / "models.toml"), "--log-dir", str(logs)]
        with ProxyProcess(echo.url, logs / "proxy-passed-fields.log", args=args) as proxy:
            proxy.echo = echo
            yield proxy


def sent(proxy, body: dict) -> dict:
    """What the engine received of one chat ``body``."""
    proxy.echo.clear()
    reply = requests.post(proxy.url + "/v1/chat/completions", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    (received,) = proxy.echo.received()
    return received


@pytest.mark.parametrize("fields", FIELDS, ids=lambda fields: next(iter(fields)))
def test_each_field_reaches_the_engine_as_it_came(proxy, fields):
    received = sent(proxy, {"model": "engine", "messages": MESSAGES, **fields})
    assert {name: received.get(name) for name in fields} == fields
    assert received["model"] == "echo-1" and received["messages"] == MESSAGES


def test_the_same_fields_reach_it_through_the_sdks_extra_body(proxy):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused")
    for fields in FIELDS:
        proxy.echo.clear()
        client.chat.completions.create(model="engine", messages=MESSAGES, extra_body=fields)
        (received,) = proxy.echo.received()
        assert {name: received.get(name) for name in fields} == fields
    client.close()


def test_the_proxys_own_fields_do_not_reach_it(proxy):
    proxy.echo.clear()
    body = {"model": "engine", "messages": MESSAGES, "n": 2, "priority": 0,
            "enable_thinking": False}  # fmt: skip
    reply = requests.post(proxy.url + "/v1/chat/completions", json=body, timeout=30)
    assert len(reply.json()["choices"]) == 2
    received = proxy.echo.received()
    assert len(received) == 2  # n: one choice asked at a time
    for each in received:
        assert not {"n", "priority", "enable_thinking"} & set(each)
        assert each["chat_template_kwargs"] == {"enable_thinking": False}  # where engines read it


def test_a_stream_the_engine_tells_no_usage_of_is_charged_the_engines_count(proxy):
    proxy.echo.clear()
    body = {"model": "engine", "messages": MESSAGES, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}  # fmt: skip
    with requests.post(proxy.url + "/v1/chat/completions", json=body, stream=True, timeout=30) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith(b"data: {")]
    usage = json.loads(events[-1])["usage"]
    streamed, probe = proxy.echo.received()
    assert streamed["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert probe["stream"] is False and probe["max_tokens"] == 1  # the engine's count, asked
    assert usage["prompt_tokens"] == len(json.dumps(MESSAGES)) // 4
    assert usage["completion_tokens"] == len(MESSAGES[-1]["content"].split())  # a piece each
    assert usage["x-oai-proxy-usage"] == "estimated"
