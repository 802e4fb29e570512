"""Tool calls and structured output through the proxy, on real servers of every kind.

The tiny model's weights are random, so whatever it writes under a grammar is what the
grammar allows: these tests prove that the constraint reaches each server and that the
answer comes back as valid calls or valid JSON, through the openai SDK and LangChain.
"""

from __future__ import annotations

import json
from typing import Literal

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import CLIENT, CURRENT, only

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 8},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "now",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
    },
}
ASK = [
    {"role": "system", "content": "You help with the weather."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
REPORT = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "score": {"type": "integer", "minimum": 0, "maximum": 9},
        "tags": {"type": "array", "items": {"enum": ["cat", "dog"]}, "maxItems": 2},
        "where": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 6}]},
    },
    "required": ["ok", "score", "tags", "where"],
    "additionalProperties": False,
}


# Room for the most calls the grammar allows, each with the most whitespace it allows: a
# random model takes every such liberty.
CALLS_BUDGET = 800


class Trip(BaseModel):
    city: Literal["Paris", "Rome"]
    nights: int = Field(ge=1, le=9)


@pytest.fixture(scope="module")
def proxy(kind, model, logs):
    with (
        LlamaServer(model, logs / f"tools-{kind}.log", kind=kind, parallel=1) as server,
        ProxyProcess(
            server.url, logs / f"proxy-tools-{kind}.log", args=["--chat-template", "chatml"]
        ) as running,
    ):
        yield running


@pytest.fixture
def client(proxy):
    return proxy.sdk()


def streamed_calls(chunks) -> tuple:
    """The calls of a streamed answer, put together from their deltas, and its finish."""
    calls, finish = {}, None
    for chunk in chunks:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or ():
            call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
            assert delta.id is None or delta.id.startswith("call_")
    return [calls[index] for index in sorted(calls)], finish


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "single"])
def test_a_required_call_is_valid_and_streams_alike(client, parallel):
    common = dict(
        model="tiny",
        messages=ASK,
        tools=[WEATHER, CLOCK],
        tool_choice="required",
        temperature=0,
        max_tokens=CALLS_BUDGET,
        parallel_tool_calls=parallel,
    )
    whole = client.chat.completions.create(**common).choices[0]
    assert whole.finish_reason == "tool_calls"
    assert whole.message.tool_calls and (parallel or len(whole.message.tool_calls) == 1)
    for call in whole.message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function"
        schema = WEATHER if call.function.name == "get_weather" else CLOCK
        jsonschema.validate(json.loads(call.function.arguments), schema["function"]["parameters"])
    calls, finish = streamed_calls(client.chat.completions.create(**common, stream=True))
    assert finish == "tool_calls"
    assert calls == [
        {"name": c.function.name, "arguments": c.function.arguments}
        for c in whole.message.tool_calls
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_calls_cut_by_the_token_limit_keep_those_written_whole(client, stream):
    """The model writes call after call until the limit: those it finished come back as
    calls, the one the limit cut is dropped, and the answer says ``length``."""
    common = dict(
        model="tiny", messages=ASK, tools=[WEATHER, CLOCK], tool_choice="required", temperature=0
    )
    full = client.chat.completions.create(**common, max_tokens=CALLS_BUDGET)
    written = [
        {"name": c.function.name, "arguments": c.function.arguments}
        for c in full.choices[0].message.tool_calls
    ]
    spent = full.usage.completion_tokens
    assert len(written) >= 2, "the model must write more than one call for a cut to show"
    kept = []
    for budget in range(4, spent, max(spent // 16, 1)):
        if stream:
            chunks = list(client.chat.completions.create(**common, max_tokens=budget, stream=True))
            calls, finish = streamed_calls(chunks)
            content = "".join(
                chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices
            )
        else:
            choice = client.chat.completions.create(**common, max_tokens=budget).choices[0]
            calls = [
                {"name": c.function.name, "arguments": c.function.arguments}
                for c in choice.message.tool_calls or ()
            ]
            finish, content = choice.finish_reason, choice.message.content or ""
        assert finish == "length"
        assert calls == written[: len(calls)]
        assert "<tool_call>" not in content and "{" not in content
        kept.append(len(calls))
    assert any(0 < count < len(written) for count in kept), kept


def test_a_named_function_is_the_one_called(client):
    reply = client.chat.completions.create(
        model="tiny",
        messages=ASK,
        tools=[WEATHER, CLOCK],
        temperature=0,
        max_tokens=CALLS_BUDGET,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"city", "unit"} and len(arguments["city"]) <= 8


def with_result(client: openai.OpenAI, model: str, ask: list) -> list:
    """``ask``, the weather call the model is made to write for it, and the call's result."""
    first = (
        client.chat.completions.create(
            model=model,
            messages=ask,
            tools=[WEATHER],
            tool_choice="required",
            temperature=0,
            max_tokens=CALLS_BUDGET,
        )
        .choices[0]
        .message
    )
    results = [
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'}
        for call in first.tool_calls
    ]
    return [*ask, first.model_dump(exclude_none=True), *results]


def test_a_call_and_its_result_go_back_to_the_model(client):
    history = with_result(client, "tiny", ASK)
    answer = client.chat.completions.create(
        model="tiny",
        messages=history,
        tools=[WEATHER],
        tool_choice="none",
        temperature=0,
        max_tokens=8,
    )
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.choices[0].message.tool_calls is None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_json_schema_answers_validate(client, stream):
    common = dict(
        model="tiny",
        messages=[{"role": "user", "content": "Rate it."}],
        temperature=0,
        max_tokens=120,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "report", "schema": REPORT},
        },
    )
    if stream:
        text = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(**common, stream=True)
            if chunk.choices
        )
    else:
        text = client.chat.completions.create(**common).choices[0].message.content
    jsonschema.validate(json.loads(text), REPORT)


def test_json_object_answers_parse(client):
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "JSON please"}],
        temperature=0,
        max_tokens=60,
        response_format={"type": "json_object"},
        extra_body={"logit_bias": {}},
    )
    text = reply.choices[0].message.content
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: still the start of an object
        assert text.lstrip().startswith("{")


@only(CURRENT, why=CLIENT)
def test_the_sdk_parses_into_a_pydantic_model(client):
    reply = client.chat.completions.parse(
        model="tiny",
        temperature=0,
        max_tokens=60,
        messages=[{"role": "user", "content": "A trip?"}],
        response_format=Trip,
    )
    trip = reply.choices[0].message.parsed
    assert isinstance(trip, Trip) and trip.city in ("Paris", "Rome") and 1 <= trip.nights <= 9


def test_an_unsupported_schema_is_a_400_naming_the_keyword(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(
            model="tiny",
            messages=ASK,
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {
                            "type": "object",
                            "properties": {"a": {"type": "string", "not": {"const": ""}}},
                        },
                    },
                }
            ],
            tool_choice="required",
        )
    assert error.value.body["param"] == "tools[0].function.parameters"
    assert "'not'" in error.value.body["message"]


@only(CURRENT, why=CLIENT)
def test_langchain_bind_tools_round_trip(proxy):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: Literal["Paris", "Rome"]) -> str:
        """The weather in a city."""
        return f"clear in {city}"

    chat = ChatOpenAI(
        base_url=proxy.url + "/v1",
        api_key="unused",
        model="tiny",
        temperature=0,
        max_tokens=CALLS_BUDGET,
        max_retries=0,
        http_client=httpx.Client(transport=proxy.transport()),
    )
    question = HumanMessage("What is the weather in Paris?")
    called = chat.bind_tools([get_weather], tool_choice="required").invoke([question])
    (call,) = called.tool_calls[:1]
    assert call["name"] == "get_weather" and call["args"]["city"] in ("Paris", "Rome")
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    answer = chat.bind_tools([get_weather]).invoke([question, called, result])
    assert isinstance(answer.content, str) and answer.response_metadata["finish_reason"] in (
        "stop",
        "length",
        "tool_calls",
    )
