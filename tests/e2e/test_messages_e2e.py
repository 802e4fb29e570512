"""Anthropic's Messages API through the proxy, with the real ``anthropic`` SDK, on current
llama-server, and a whole and a streamed message on the old servers (what each generation
does is proven through OpenAI's API; the translation is the same on all).

The model answers a fixed text and stops (see :mod:`.stoppingmodel`), its thoughts first in
``<think>`` tags; the proxy's chat template (the model's own, a chatml that drops earlier
thoughts) tells it that the model thinks.
"""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import API, CURRENT, only
from .stoppingmodel import ANSWER_TEXT, CHAT_TEMPLATE, THINKING, THOUGHTS_TEXT, write_stopping_gguf

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Say hello."}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"
models = ["tiny"]
requests_per_minute = 1
"""


@pytest.fixture(scope="module")
def thinking_model(tmp_path_factory):
    return write_stopping_gguf(tmp_path_factory.mktemp("thinking") / "thinking.gguf", THINKING)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "thinking.jinja"
    path.write_text(CHAT_TEMPLATE)
    return path


@pytest.fixture(scope="module")
def server(thinking_model, logs, kind):
    with LlamaServer(
        thinking_model, logs / f"messages-{kind}.log", kind=kind, parallel=2, ctx_size=8192
    ) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(server, template, logs):
    with ProxyProcess(
        server.url,
        logs / f"proxy-messages-{server.kind}.log",
        args=["--chat-template", str(template)],
    ) as running:
        yield running


@pytest.fixture
def client(proxy) -> anthropic.Anthropic:
    return proxy.anthropic()


def test_a_whole_message(client):
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=HI)
    assert message.id.startswith("msg_") and message.role == "assistant"
    assert [(block.type, block.text) for block in message.content] == [("text", ANSWER_TEXT)]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    # the answer's tokens, and current llama-server counts its end-of-text token too
    assert message.usage.output_tokens in (len(THINKING), len(THINKING) + 1)
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) > 0


@only(CURRENT, why=API)
def test_thinking_shows_the_thoughts(client):
    message = client.messages.create(
        model="tiny",
        max_tokens=64,
        messages=HI,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == THOUGHTS_TEXT and message.content[0].signature
    assert message.content[1].text == ANSWER_TEXT


@only(CURRENT, why=API)
@pytest.mark.parametrize(
    "thinking", [None, {"type": "enabled", "budget_tokens": 1024}], ids=["plain", "thinking"]
)
def test_a_streamed_message_adds_up_to_the_whole_one(client, thinking):
    options = dict(
        model="tiny", max_tokens=64, messages=HI, **({"thinking": thinking} if thinking else {})
    )
    whole = client.messages.create(**options)
    with client.messages.stream(**options) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == ANSWER_TEXT
    assert final.model_dump(exclude={"id", "usage"}) == whole.model_dump(exclude={"id", "usage"})
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens + (
        final.usage.cache_read_input_tokens or 0
    ) == whole.usage.input_tokens + (whole.usage.cache_read_input_tokens or 0)


def test_a_streams_first_event_already_counts_the_prompt(client):
    """Agents track their context from ``message_start``, on every server kind (the old ones
    count a prompt only at its answer's end: the proxy counts it first)."""
    with client.messages.stream(model="tiny", max_tokens=64, messages=HI) as stream:
        events = list(stream)
        final = stream.get_final_message()
    start = events[0]
    assert start.type == "message_start"
    prompt = final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)
    assert prompt > 0
    assert (
        start.message.usage.input_tokens + (start.message.usage.cache_read_input_tokens or 0)
        == prompt
    )


@only(CURRENT, why=API)
def test_the_limit_is_max_tokens(client):
    message = client.messages.create(
        model="tiny", max_tokens=3, messages=HI, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


@only(CURRENT, why=API)
def test_a_forced_tool_call_and_its_result(client):
    first = client.messages.create(
        model="tiny",
        max_tokens=800,
        messages=[{"role": "user", "content": "Oslo weather?"}],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and set(call.input) == {"city"}
    assert len(call.input["city"]) <= 8
    history = [
        {"role": "user", "content": "Oslo weather?"},
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}],
        },
    ]
    answer = client.messages.create(model="tiny", max_tokens=64, messages=history, tools=[WEATHER])
    assert answer.stop_reason == "end_turn"
    assert [block.text for block in answer.content if block.type == "text"] == [ANSWER_TEXT]


@only(CURRENT, why=API)
def test_a_streamed_tool_call_joins_into_its_input(client):
    options = dict(
        model="tiny",
        max_tokens=800,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Oslo weather?"}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    with client.messages.stream(**options) as stream:
        pieces = [event.partial_json for event in stream if event.type == "input_json"]
        final = stream.get_final_message()
    (call,) = [block for block in final.content if block.type == "tool_use"]
    assert json.loads("".join(pieces)) == call.input
    assert final.stop_reason == "tool_use"


@only(CURRENT, why=API)
def test_count_tokens_is_what_the_prompt_takes(client):
    system = "You are terse."
    counted = client.messages.count_tokens(model="tiny", system=system, messages=HI)
    message = client.messages.create(model="tiny", max_tokens=64, system=system, messages=HI)
    used = message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    assert counted.input_tokens == used


@only(CURRENT, why=API)
def test_keys_in_anthropics_shape(server, template, logs, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    with ProxyProcess(
        server.url,
        logs / f"proxy-messages-keys-{server.kind}.log",
        args=[
            "--chat-template",
            str(template),
            "--config",
            str(models_file(tmp_path, server.url, template)),
            "--keys",
            str(keys),
        ],
    ) as keyed:
        with pytest.raises(anthropic.AuthenticationError) as missing:
            keyed.anthropic(api_key="sk-nobody").messages.create(
                model="tiny", max_tokens=8, messages=HI
            )
        assert missing.value.body["error"]["type"] == "authentication_error"
        alice = keyed.anthropic(api_key="sk-alice")
        with pytest.raises(anthropic.PermissionDeniedError) as denied:
            alice.messages.create(model="other", max_tokens=8, messages=HI)
        assert denied.value.body["error"]["type"] == "permission_error"
        assert alice.messages.create(model="tiny", max_tokens=8, messages=HI).content
        with pytest.raises(anthropic.RateLimitError) as limited:
            alice.messages.create(model="tiny", max_tokens=8, messages=HI)
        assert limited.value.body["error"]["type"] == "rate_limit_error"


def models_file(folder, url: str, template) -> str:
    path = folder / "models.toml"
    path.write_text(
        f'[models.tiny]\nupstreams = ["{url}"]\nchat_template = "{template}"\n'
        f'[models.other]\nupstreams = ["{url}"]\n'
    )
    return str(path)


@only(CURRENT, why=API)
def test_chat_completions_give_the_same_thoughts_as_reasoning_content(proxy):
    client = proxy.sdk()
    asked = dict(model="tiny", max_tokens=64, messages=HI)
    message = client.chat.completions.create(**asked).choices[0].message
    assert message.content == ANSWER_TEXT
    assert message.model_extra["reasoning_content"] == THOUGHTS_TEXT
    deltas = [
        chunk.choices[0].delta
        for chunk in client.chat.completions.create(**asked, stream=True)
        if chunk.choices
    ]
    assert "".join(d.content or "" for d in deltas) == ANSWER_TEXT
    assert (
        "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
        == THOUGHTS_TEXT
    )
