"""A usage an engine does not tell, estimated within a tenth of the engine's own count of the
same request asked whole, on llama-cpp-python's server (an ``openai`` upstream whose streams
tell no usage) with SmolLM2 under a reasoning model's template, Qwen3's, which renders the
tools, the calls, their results and the thoughts sent back before them.

The prompt is estimated where the engine will not count it: a system prompt and a question
with three tools, and the same with two turns of thoughts, calls and results. The streamed
answers, thoughts and text and a call's arguments, are charged a token a piece, and their
prompt what the engine counts. The engine parses no thoughts out of its answers (the model's
come back as text, counted as text is) and reads none sent back as ``reasoning_content``
(its request types drop the field): the thoughts here are sent back in the content, where
Qwen3's template reads them too."""

from __future__ import annotations

import json

import pytest
import requests

from proxy.backends.wire import untold
from proxy.dialects.dialect import Limits
from proxy.dialects.openai import chat
from tests.processes import ProxyProcess

from .engines import LlamaCppPythonServer
from .families import FAMILIES, TIME, WEATHER
from .smollm2 import smollm2_under

pytestmark = [pytest.mark.e2e]

SECRET = "sk-engine-7e1f3a"
MODELS = """
[models.engine]
backend = "openai"
upstreams = ["{engine}/v1"]
upstream_model = "smol"
upstream_key_env = "ENGINE_KEY"
"""
SEARCH = {"type": "function", "function": {
    "name": "search_files",
    "description": "Search the project's files for a pattern and return the matching lines "
                   "with their paths and line numbers. Use it before reading a file whole.",
    "parameters": {"type": "object", "properties": {
        "pattern": {"type": "string", "description": "A regular expression, as grep -E reads it"},
        "path": {"type": "string", "description": "The folder to search, from the root"},
        "max_results": {"type": "integer", "minimum": 1, "maximum": 200,
                        "description": "How many matching lines to return at most"},
    }, "required": ["pattern"]},
}}  # fmt: skip
TOOLS = [WEATHER, TIME, SEARCH]
ASKED = [
    {"role": "system", "content": "You are a careful assistant for a team of travellers. "
     "Answer in plain English, in at most three sentences, and call a tool whenever the "
     "answer depends on today's weather or the local time. Never guess a temperature."},
    {"role": "user", "content": "We land in Paris tomorrow morning and fly on to Lisbon in the "
     "evening. What should we pack, and will we need umbrellas in either city?"},
]  # fmt: skip


def turn(number: int, thought: str, city: str, weather: dict) -> list:
    """An assistant's turn, its thoughts sent back in its content, its call and its result."""
    call = {
        "id": f"call_{number}",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
    }
    return [
        {"role": "assistant", "content": f"<think>\n{thought}\n</think>\n\n", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"call_{number}",
         "content": json.dumps({"city": city, **weather})},
    ]  # fmt: skip


CALLED = ASKED + turn(
    1, "The user needs the weather in two cities. I should look up Paris first, then Lisbon, "
    "and only then suggest what to pack.", "Paris",
    {"temperature_c": 14, "sky": "light rain", "wind_kmh": 18, "humidity": 0.82},
) + turn(
    2, "Paris will be wet and cool. Now Lisbon, for the evening.", "Lisbon",
    {"temperature_c": 21, "sky": "clear", "wind_kmh": 9, "humidity": 0.55},
)  # fmt: skip
PROMPTS = {"tools": ASKED, "thoughts, calls and results": CALLED}
FORCED = {"type": "function", "function": {"name": "get_weather"}}
ANSWERS = {"thoughts and text": {}, "a call's arguments": {"tool_choice": FORCED}}


@pytest.fixture(scope="module")
def proxy(logs, tmp_path_factory):
    work = tmp_path_factory.mktemp("untold-usage")
    qwen3 = next(family for family in FAMILIES if family.name == "qwen3")
    model = smollm2_under(qwen3.chat_template(), work / "smollm2-qwen3.gguf")
    with LlamaCppPythonServer(
        model, logs / "llama-cpp-python-qwen3.log", alias="smol", key=SECRET, ctx_size=4096
    ) as engine:
        (work / "models.toml").write_text(MODELS.format(engine=engine.url))
        args = ["--config", str(work / "models.toml"), "--log-dir", str(logs)]
        with ProxyProcess(
            engine.url, logs / "proxy-untold.log", args=args, env={"ENGINE_KEY": SECRET}
        ) as proxy:
            proxy.engine = engine
            yield proxy


def counted(proxy, body: dict) -> dict:
    """The engine's own usage of ``body``, asked whole."""
    reply = proxy.engine.chat({"model": "smol", "temperature": 0, **body})
    assert reply.status_code == 200, reply.text
    return reply.json()["usage"]


def near(estimate: int, count: int) -> bool:
    return abs(estimate - count) <= 0.1 * count


@pytest.mark.parametrize("messages", PROMPTS.values(), ids=PROMPTS)
def test_a_prompt_the_engine_does_not_count_is_estimated_within_a_tenth(proxy, messages):
    body = {"messages": messages, "tools": TOOLS}
    count = counted(proxy, {**body, "max_tokens": 1})["prompt_tokens"]
    estimate = untold.prompt_estimate(chat.parse({"model": "engine", **body}, Limits()).request)
    assert near(estimate, count), (estimate, count)


@pytest.mark.parametrize("asked", ANSWERS.values(), ids=ANSWERS)
def test_a_streamed_answer_is_charged_a_token_a_piece_and_the_engines_prompt(proxy, asked):
    body = {"messages": CALLED, "tools": TOOLS, "temperature": 0, "max_tokens": 48, **asked}
    own = counted(proxy, body)
    with requests.post(
        proxy.url + "/v1/chat/completions", timeout=120, stream=True,
        json={"model": "engine", **body, "stream": True, "stream_options": {"include_usage": True}},
    ) as reply:  # fmt: skip
        events = [
            json.loads(line[6:]) for line in reply.iter_lines() if line.startswith(b"data: {")
        ]
    deltas = [event["choices"][0]["delta"] for event in events if event["choices"]]
    if "tool_choice" in asked:
        assert any(delta.get("tool_calls") for delta in deltas)
    else:  # the model thinks before it answers, in its text
        assert "<think>" in "".join(delta.get("content") or "" for delta in deltas)
    usage = events[-1]["usage"]
    assert usage["x-oai-proxy-usage"] == "estimated"
    assert usage["prompt_tokens"] == own["prompt_tokens"]  # the engine's own count
    assert near(usage["completion_tokens"], own["completion_tokens"]), (usage, own)
