"""OpenAI's Responses API through the proxy, with the real ``openai`` SDK, on current
llama-server: whole and streamed, a function-call round trip (stored, and sent whole),
structured output and input tokens; and a whole and a streamed response on the old servers
(what each generation does is proven through the chat completions API; the translation is
the same on all).

The model answers a fixed text and stops (see :mod:`.stoppingmodel`), its thoughts first.
"""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import API, CURRENT, only
from .stoppingmodel import ANSWER_TEXT, CHAT_TEMPLATE, THINKING, THOUGHTS_TEXT, write_stopping_gguf

pytestmark = pytest.mark.e2e

EXEC = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string", "maxLength": 12}},
        "required": ["cmd"],
        "additionalProperties": False,
    },
    "strict": True,
}
TRIP = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 8},
        "nights": {"type": "integer", "minimum": 1, "maximum": 9},
    },
    "required": ["city", "nights"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def proxy(kind, logs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("responses")
    model = write_stopping_gguf(folder / "thinking.gguf", THINKING)
    template = folder / "thinking.jinja"
    template.write_text(CHAT_TEMPLATE)
    with (
        LlamaServer(
            model, logs / f"responses-{kind}.log", kind=kind, parallel=2, ctx_size=8192
        ) as server,
        ProxyProcess(
            server.url,
            logs / f"proxy-responses-{kind}.log",
            args=["--chat-template", str(template)],
        ) as running,
    ):
        yield running


@pytest.fixture
def client(proxy) -> openai.OpenAI:
    return proxy.sdk()


def test_a_whole_response(client):
    response = client.responses.create(
        model="local", input="Say hello.", reasoning={"summary": "auto"}
    )
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == ANSWER_TEXT
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert reasoning[0].content[0].text == THOUGHTS_TEXT
    assert reasoning[0].summary[0].text == THOUGHTS_TEXT
    usage = response.usage
    assert usage.output_tokens_details.reasoning_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_a_streamed_response_ends_as_the_whole_one(client):
    whole = client.responses.create(model="local", input="Say hello.")
    with client.responses.stream(model="local", input="Say hello.") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == ANSWER_TEXT == final.output_text

    def shape(response) -> list:
        return [
            (item.type, getattr(item, "content", None) and [part.text for part in item.content])
            for item in response.output
        ]

    assert shape(final) == shape(whole)
    assert final.usage.output_tokens == whole.usage.output_tokens


@only(CURRENT, why=API)
def test_the_limit_leaves_it_incomplete(client):
    response = client.responses.create(model="local", input="Say hello.", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"


@only(CURRENT, why=API)
def test_a_function_call_round_trip_through_a_stored_response(client):
    first = client.responses.create(
        model="local",
        input="List the files.",
        tools=[EXEC],
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=800,
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "exec_command" and set(json.loads(call.arguments)) == {"cmd"}
    answer = client.responses.create(
        model="local",
        previous_response_id=first.id,
        tools=[EXEC],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "a.txt"}],
    )
    assert answer.output_text == ANSWER_TEXT
    assert answer.previous_response_id == first.id
    listed = client.responses.input_items.list(answer.id)
    assert [item.type for item in listed.data] == ["function_call_output"]
    assert client.responses.retrieve(answer.id).output_text == ANSWER_TEXT
    client.responses.delete(answer.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(answer.id)


@only(CURRENT, why=API)
def test_a_function_call_round_trip_sent_whole_without_storing(client):
    asked = [{"role": "user", "content": "List the files."}]
    first = client.responses.create(
        model="local",
        input=asked,
        tools=[EXEC],
        store=False,
        tool_choice={"type": "function", "name": "exec_command"},
        max_output_tokens=800,
    )
    calls = [item for item in first.output if item.type == "function_call"]
    history = (
        asked
        + [item.model_dump(exclude_none=True) for item in first.output]
        + [
            {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt"}
            for call in calls
        ]
    )
    answer = client.responses.create(model="local", input=history, tools=[EXEC], store=False)
    assert answer.output_text == ANSWER_TEXT
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


@only(CURRENT, why=API)
def test_structured_output_follows_the_schema(client):
    response = client.responses.create(
        model="local",
        input="A trip, please.",
        max_output_tokens=400,
        text={"format": {"type": "json_schema", "name": "trip", "schema": TRIP, "strict": True}},
    )
    jsonschema.validate(json.loads(response.output_text), TRIP)


@only(CURRENT, why=API)
def test_input_tokens_is_what_the_prompt_takes(client):
    counted = client.responses.input_tokens.count(
        model="local", input="Say hello.", instructions="Be brief."
    )
    response = client.responses.create(model="local", input="Say hello.", instructions="Be brief.")
    assert counted.input_tokens == response.usage.input_tokens
