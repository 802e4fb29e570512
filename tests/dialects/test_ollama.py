"""Ollama's API both ways: bodies into requests, the core's events into NDJSON lines and
whole answers, errors in its shape."""

from __future__ import annotations

import dataclasses
import json

import pytest

from proxy.core.answers import Completion, Embeddings, ModelCard, ModelInfo, Usage
from proxy.core.errors import InvalidRequestError, ModelNotFoundError, QueueFullError
from proxy.core.events import (
    WAITING,
    Finish,
    PromptCounted,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageReport,
)
from proxy.core.sse import encode_line
from proxy.core.types import Message, ResponseFormat, ToolCall
from proxy.dialects.ollama import answer, catalog, chat, embed, generate
from proxy.dialects.ollama.request import unmanaged

HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
SCHEMA = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}


def ask(**fields):
    return chat.parse({"model": "qwen:latest", "messages": HI, **fields})


# -- requests ------------------------------------------------------------------------------


def test_a_minimal_chat_streams_by_default():
    parsed = ask()
    assert parsed.request.model == "qwen:latest" and parsed.stream is True
    assert parsed.request.messages == (Message("user", "hi"),)
    assert (parsed.notes.name, parsed.notes.load, parsed.notes.keep_alive) == (
        "qwen:latest",
        False,
        None,
    )


@pytest.mark.parametrize(("stream", "expected"), [(False, False), (True, True), (None, True)])
def test_stream_is_true_unless_false(stream, expected):
    assert ask(stream=stream).stream is expected


def test_options_become_sampling_limits_and_stops_and_the_rest_is_named():
    parsed = ask(
        options={
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 20,
            "min_p": 0.05,
            "num_predict": 64,
            "stop": ["END"],
            "seed": 7,
            "repeat_penalty": 1.1,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "num_ctx": 8192,
            "num_gpu": 99,
        }
    )
    request = parsed.request
    assert (
        request.sampling.temperature,
        request.sampling.top_p,
        request.sampling.top_k,
        request.sampling.min_p,
        request.sampling.seed,
    ) == (0.2, 0.9, 20, 0.05, 7)
    assert (
        request.sampling.repeat_penalty,
        request.sampling.presence_penalty,
        request.sampling.frequency_penalty,
    ) == (1.1, 0.5, 0.25)
    assert request.max_tokens == 64 and request.stop == ("END",)
    assert parsed.notes.ignored == ("num_ctx", "num_gpu")
    assert answer.headers(parsed) == {answer.IGNORED_HEADER: "num_ctx, num_gpu"}


@pytest.mark.parametrize("limit", [-1, -2])
def test_a_negative_num_predict_means_no_limit(limit):
    assert ask(options={"num_predict": limit}).request.max_tokens is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("json", ResponseFormat("json_object")),
        (SCHEMA, ResponseFormat("json_schema", SCHEMA)),
        ("", None),
        (None, None),
    ],
)
def test_format(value, expected):
    assert ask(format=value).request.response_format == expected


@pytest.mark.parametrize(
    ("think", "variables"),
    [
        (True, {"enable_thinking": True}),
        (False, {"enable_thinking": False}),
        ("low", {"enable_thinking": True, "reasoning_effort": "low"}),
        ("high", {"enable_thinking": True, "reasoning_effort": "high"}),
        ("max", {"enable_thinking": True, "reasoning_effort": "high"}),
        (None, {}),
    ],
)
def test_think_reaches_the_template(think, variables):
    assert ask(think=think).request.template_kwargs == variables


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        ("0", 0.0),
        (300, 300.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        (-1, -1.0),
        ("-1m", -1.0),
        (None, None),
    ],
)
def test_keep_alive(value, seconds):
    assert ask(keep_alive=value).notes.keep_alive == seconds


def test_a_tool_round_trip_becomes_the_chats_calls_and_results():
    parsed = ask(
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Oslo and Rome?"},
            {
                "role": "assistant",
                "content": "",
                "thinking": "Two cities.",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
                    {
                        "id": "call_b",
                        "function": {"name": "get_weather", "arguments": {"city": "Rome"}},
                    },
                ],
            },
            {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
            {"role": "tool", "tool_name": "get_weather", "content": "rain"},
            {"role": "tool", "tool_call_id": "given", "content": "x"},
        ],
    )
    assistant, first, second, third = parsed.request.messages[1:]
    assert assistant.tool_calls == (
        ToolCall("call_1_0", "get_weather", '{"city":"Oslo"}'),
        ToolCall("call_b", "get_weather", '{"city":"Rome"}'),
    )
    assert assistant.reasoning == "Two cities."
    assert (first.tool_call_id, second.tool_call_id, third.tool_call_id) == (
        "call_1_0",
        "call_b",
        "given",
    )
    assert first.name == "get_weather" and first.content == "sunny"
    assert parsed.request.tools[0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": None}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": "x", "images": ["aGk="]}]},
            "messages[0].images[0]",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]}
                ]
            },
            "messages[0].tool_calls",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": 3}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"tools": [{"type": "function", "function": {"description": "no name"}}]},
            "tools[0].function.name",
        ),
        ({"format": "xml"}, "format"),
        ({"format": {"type": "nonsense"}}, "format"),
        ({"think": "very"}, "think"),
        ({"keep_alive": "300"}, "keep_alive"),
        ({"keep_alive": "soon"}, "keep_alive"),
        ({"options": {"temperature": "hot"}}, "options.temperature"),
        ({"options": {"num_predict": 0}}, "options.num_predict"),
        ({"options": {"stop": 5}}, "options.stop"),
        ({"options": []}, "options"),
    ],
)
def test_bad_fields_are_named(fields, param):
    with pytest.raises(InvalidRequestError) as raised:
        ask(**fields)
    assert raised.value.param == param


def test_no_messages_only_loads_the_model():
    parsed = chat.parse({"model": "qwen", "messages": [], "keep_alive": 0})
    assert parsed.notes.load and parsed.notes.keep_alive == 0


def test_generate_goes_through_the_template_unless_raw():
    templated = generate.parse(
        {
            "model": "qwen",
            "prompt": "Why?",
            "system": "Be brief.",
            "template": "ignored",
            "context": [1, 2],
            "think": False,
        }
    )
    assert templated.request.messages == (Message("system", "Be brief."), Message("user", "Why?"))
    assert templated.request.prompt is None
    assert templated.request.template_kwargs == {"enable_thinking": False}
    raw = generate.parse({"model": "qwen", "prompt": "<s>Why?", "raw": True})
    assert raw.request.prompt == "<s>Why?" and raw.request.messages == ()
    assert generate.parse({"model": "qwen", "prompt": ""}).notes.load


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"raw": True, "system": "x"}, "system"),
        ({"images": ["aGk="]}, "images[0]"),
        ({"suffix": 3}, "suffix"),
        ({"suffix": "return x", "system": "be brief"}, "system"),
        ({"suffix": "return x", "images": ["aGk="]}, "images"),
        ({"prompt": 3}, "prompt"),
    ],
)
def test_bad_generate_fields_are_named(fields, param):
    with pytest.raises(InvalidRequestError) as raised:
        generate.parse({"model": "qwen", "prompt": "p", **fields})
    assert raised.value.param == param


# -- streams -------------------------------------------------------------------------------


def lines(stream, batches) -> list:
    """The NDJSON a stream writes, decoded line by line (each line one JSON object)."""
    raw = b"".join(
        payload if isinstance(payload, bytes) else encode_line(payload)
        for write in stream.render(iter(batches))
        for payload in write
    )
    assert raw.endswith(b"\n") and b"\n\n" not in raw
    return [json.loads(text) for text in raw.decode().split("\n")[:-1]]


def test_a_chat_stream_is_a_line_per_piece_then_the_last_with_times():
    stream = chat.stream(ask(), "", "ignored")
    out = lines(
        stream,
        [
            [PromptCounted(5), TextDelta("Hel")],
            [TextDelta("lo")],
            [UsageReport(Usage(5, 2, prompt_ms=1.5, eval_ms=4.0)), Finish("stop")],
        ],
    )
    assert [line["message"]["content"] for line in out] == ["Hel", "lo", ""]
    assert [line["done"] for line in out] == [False, False, True]
    assert all(line["model"] == "qwen:latest" and line["created_at"].endswith("Z") for line in out)
    last = out[-1]
    assert last["done_reason"] == "stop"
    assert (last["prompt_eval_count"], last["eval_count"]) == (5, 2)
    assert (last["prompt_eval_duration"], last["eval_duration"]) == (1_500_000, 4_000_000)
    assert last["total_duration"] >= last["load_duration"] >= 0


@pytest.mark.parametrize(
    ("reason", "expected"), [("stop", "stop"), ("length", "length"), ("tool_calls", "stop")]
)
def test_done_reason(reason, expected):
    assert lines(chat.stream(ask(), "", ""), [[Finish(reason)]])[-1]["done_reason"] == expected


def test_thoughts_and_calls_at_every_boundary():
    events = [
        ReasoningDelta("Let me"),
        ReasoningDelta(" look."),
        ToolCallStart(0, "call_x", "get_weather"),
        ToolCallDelta(0, '{"ci'),
        ToolCallDelta(0, 'ty": "Oslo"}'),
        ToolCallEnd(0),
        ToolCallStart(1, "call_y", "get_weather"),
        ToolCallDelta(1, "not json"),
        ToolCallEnd(1),
        Finish("tool_calls"),
    ]
    for cut in range(len(events) + 1):  # the same answer, however the events are batched
        out = lines(chat.stream(ask(), "", ""), [events[:cut], events[cut:]])
        thinking = "".join(line["message"].get("thinking", "") for line in out)
        calls = [call for line in out for call in line["message"].get("tool_calls", ())]
        assert thinking == "Let me look."
        assert calls == [
            {
                "id": "call_x",
                "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}},
            },
            {
                "id": "call_y",
                "function": {
                    "index": 1,
                    "name": "get_weather",
                    "arguments": {"arguments": "not json"},
                },
            },
        ]


def test_thoughts_stay_out_when_think_is_false():
    out = lines(
        chat.stream(ask(think=False), "", ""),
        [[ReasoningDelta("hidden"), TextDelta("shown"), Finish("stop")]],
    )
    assert all("thinking" not in line["message"] for line in out)


def test_a_generate_stream_writes_responses():
    parsed = generate.parse({"model": "qwen", "prompt": "p"})
    out = lines(
        generate.stream(parsed, "", ""),
        [[WAITING], [ReasoningDelta("hm"), TextDelta("A")], [Finish("length")]],
    )
    assert [line.get("response") for line in out] == ["", "A", ""]
    assert out[0]["thinking"] == "hm" and out[-1]["done_reason"] == "length"
    assert out[-1]["load_duration"] > 0  # it waited for the server to start


def test_a_failure_after_the_first_line_is_an_error_line():
    assert chat.stream(ask(), "", "").failure(QueueFullError("busy")) == [{"error": "busy"}]


def test_the_stream_tells_the_last_line_to_whom_keeps_it():
    stream = chat.stream(ask(), "", "")
    kept = []
    stream.kept = kept.append
    out = lines(stream, [[TextDelta("x"), Finish("stop")]])
    assert kept == [out[-1]]


# -- whole answers ---------------------------------------------------------------------------


def test_a_whole_chat_answer():
    completion = Completion(
        "It is sunny.",
        "stop",
        Usage(9, 4, prompt_ms=2.0, eval_ms=8.0),
        reasoning="Check.",
        tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Oslo"}'),),
    )
    body = chat.render(ask(stream=False), "", "ignored", [completion])
    assert body["message"] == {
        "role": "assistant",
        "content": "It is sunny.",
        "thinking": "Check.",
        "tool_calls": [
            {
                "id": "call_1",
                "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}},
            }
        ],
    }
    assert (body["done"], body["done_reason"], body["model"]) == (True, "stop", "qwen:latest")
    assert (body["prompt_eval_duration"], body["eval_duration"]) == (2_000_000, 8_000_000)


def test_a_whole_generate_answer():
    parsed = generate.parse({"model": "qwen", "prompt": "p", "stream": False})
    body = generate.render(parsed, "", "", [Completion("A.", "length", Usage(3, 1))])
    assert body["response"] == "A." and body["done_reason"] == "length"
    assert "message" not in body


@pytest.mark.parametrize(
    ("body", "keep_alive", "headers"),
    [
        pytest.param({}, None, {}, id="no-keep-alive"),
        pytest.param(
            {"keep_alive": 0}, None, {answer.IGNORED_FIELDS_HEADER: "keep_alive"}, id="unload"
        ),
        pytest.param(
            {"keep_alive": "5m", "options": {"num_ctx": 8}},
            None,
            {answer.IGNORED_HEADER: "num_ctx", answer.IGNORED_FIELDS_HEADER: "keep_alive"},
            id="with-an-ignored-option",
        ),
    ],
)
def test_a_client_that_may_not_manage_servers_has_its_keep_alive_left_out(
    body, keep_alive, headers
):
    ask = generate.parse({"model": "m", "prompt": "hi", **body})
    notes = unmanaged(ask.notes)
    assert notes.keep_alive == keep_alive
    assert answer.headers(dataclasses.replace(ask, notes=notes)) == headers


def test_errors_are_ollamas_shape():
    assert answer.error_body(ModelNotFoundError("x")) == {
        "error": "The model 'x' does not exist here"
    }


# -- embeddings ------------------------------------------------------------------------------


def test_embed_answers_unit_vectors_cut_to_dimensions():
    wanted = embed.parse_embed({"model": "e", "input": ["a", "b"], "dimensions": 2})
    body = embed.render_embed(wanted, Embeddings(((3.0, 4.0, 12.0), (0.0, 0.0, 1.0)), 6))
    assert body["embeddings"] == [[0.6, 0.8], [0.0, 0.0]]
    assert body["prompt_eval_count"] == 6 and body["model"] == "e"
    assert embed.parse_embed({"model": "e", "input": "one"}).inputs == ("one",)


def test_the_older_embeddings_route_answers_the_vector_as_given():
    wanted = embed.parse_embeddings({"model": "e", "prompt": "hi"})
    assert embed.render_embeddings(Embeddings(((3.0, 4.0),), 1)) == {"embedding": [3.0, 4.0]}
    assert wanted.inputs == ("hi",)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "e", "input": [1, 2]}, "input"),
        ({"model": "e", "input": [""]}, "input"),
        ({"model": "e"}, "input"),
        ({"input": "x"}, "model"),
    ],
)
def test_bad_embed_fields_are_named(body, param):
    with pytest.raises(InvalidRequestError) as raised:
        embed.parse_embed(body)
    assert raised.value.param == param


# -- the models ------------------------------------------------------------------------------

CARD = ModelCard(
    capabilities=("completion", "tools", "thinking"),
    context_length=4096,
    architecture="qwen3",
    parameters=600_000_000,
    quantization="Q8_0",
    size=640_000_000,
    digest="ab" * 32,
    modified=0.0,
    template="{{ x }}",
)


def test_tags_list_every_model_under_a_tag():
    body = catalog.tags([ModelInfo("qwen", card=CARD), ModelInfo("old:v1")])
    first, second = body["models"]
    assert (first["name"], first["model"], second["name"]) == (
        "qwen:latest",
        "qwen:latest",
        "old:v1",
    )
    assert first["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "qwen3",
        "families": ["qwen3"],
        "parameter_size": "600M",
        "quantization_level": "Q8_0",
    }
    assert first["size"] == 640_000_000 and first["digest"] == "ab" * 32
    assert len(second["digest"]) == 64  # a model with no file known is named by its id


def test_show_tells_the_context_served_and_what_the_model_can_do():
    body = catalog.show(ModelInfo("qwen", card=CARD), "qwen:latest")
    assert body["model_info"] == {
        "general.architecture": "qwen3",
        "general.basename": "qwen:latest",
        "general.parameter_count": 600_000_000,
        "qwen3.context_length": 4096,
    }
    assert body["capabilities"] == ["completion", "tools", "thinking"]
    assert body["template"] == "{{ x }}"


def test_ps_lists_running_models_with_their_expiry():
    body = catalog.ps([ModelInfo("qwen", card=CARD), ModelInfo("idle")], {"qwen": (1024, 86400.0)})
    (entry,) = body["models"]
    assert (entry["name"], entry["size"], entry["context_length"]) == ("qwen:latest", 1024, 4096)
    assert entry["expires_at"] == "1970-01-02T00:00:00+00:00"


def test_running_models_from_the_fleets_status():
    ready = {
        "state": "ready",
        "memory": {"measured": 2048, "estimate": 4096},
        "idle_seconds": 10.0,
        "ttl": 60.0,
    }
    status = [
        {"id": "elsewhere", "replicas": [{"in_rotation": True}]},
        {"id": "down", "replicas": [{"in_rotation": False}]},
        {"id": "managed", "replicas": [{"in_rotation": True, "managed": ready}]},
        {"id": "forever", "replicas": [{"in_rotation": True, "managed": {**ready, "ttl": 0}}]},
        {
            "id": "stopped",
            "replicas": [{"in_rotation": True, "managed": {**ready, "state": "stopped"}}],
        },
    ]
    assert catalog.running(status, 1000.0) == {
        "elsewhere": (0, None),
        "managed": (2048, 1050.0),
        "forever": (2048, None),
    }


def test_the_version_is_one_clients_accept():
    major, minor, patch = map(int, catalog.version()["version"].split("."))
    assert (major, minor, patch) >= (0, 6, 4)


@pytest.mark.parametrize(
    ("fields", "prompt", "suffix"),
    [
        (
            {"prompt": "def f(x):\n    ", "suffix": "\n    return y"},
            "def f(x):\n    ",
            "\n    return y",
        ),
        ({"prompt": "", "suffix": "return y"}, "", "return y"),  # the gap at the very start
        ({"prompt": "a = ", "suffix": ""}, None, None),  # nothing after it: a chat's prompt
    ],
)
def test_a_suffix_asks_to_fill_the_gap_before_it(fields, prompt, suffix):
    (request,) = generate.parse({"model": "coder", **fields}).requests
    assert (request.prompt, request.suffix) == (prompt, suffix)
