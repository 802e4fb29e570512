"""OpenAI's Responses API both ways: bodies into requests, the core's events into the response
object and its numbered event sequence."""

from __future__ import annotations

import json

import pytest

from proxy.core.answers import Completion, Usage
from proxy.core.errors import InvalidRequestError, UpstreamError
from proxy.core.events import (
    WAITING,
    Extras,
    Finish,
    Passed,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageReport,
)
from proxy.core.sse import COMMENT
from proxy.core.tooluse import ToolUse
from proxy.core.types import Message, ResponseFormat, ToolCall, ToolChoice
from proxy.dialects import responses
from proxy.dialects.responses import ResponsesStream, continuing, parse
from proxy.dialects.responses.answer import message_item

from .payloads import payloads

FUNCTION = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    "strict": False,
}


def ask(**fields):
    return parse({"model": "local", "input": "hi", **fields})


# -- requests -------------------------------------------------------------------------------


def test_a_string_input():
    parsed = ask(instructions="Be brief.", max_output_tokens=32, temperature=0.5)
    assert parsed.request.messages == (Message("system", "Be brief."), Message("user", "hi"))
    assert parsed.request.max_tokens == 32 and parsed.request.sampling.temperature == 0.5
    assert parsed.notes.store and not parsed.stream
    (item,) = parsed.notes.input_items
    assert item["type"] == "message" and item["id"].startswith("msg_")


def test_items_of_a_codex_turn():
    items = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "You are Codex."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "<environment_context>…</environment_context>"}
            ],
        },
        {"type": "message", "role": "user", "content": "List the files."},
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "x"}],
            "encrypted_content": None,
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Running ls."}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "exec_command",
            "arguments": '{"cmd": "ls"}',
        },
        {
            "type": "function_call",
            "call_id": "call_2",
            "name": "exec_command",
            "arguments": '{"cmd": "pwd"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "/work"}],
        },
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
    ]
    parsed = ask(
        input=items,
        tools=[
            FUNCTION,
            {"type": "web_search", "external_web_access": False},
            {"type": "namespace", "name": "multi_agent_v1", "tools": []},
        ],
        tool_choice="auto",
        parallel_tool_calls=True,
        store=False,
        reasoning={"summary": "auto"},
        include=["reasoning.encrypted_content"],
        prompt_cache_key="thread-1",
        client_metadata={"x": "y"},
    )
    assert parsed.request.messages == (
        Message("developer", "You are Codex."),
        Message("user", "<environment_context>…</environment_context>"),
        Message("user", "List the files."),
        Message(
            "assistant",
            "Running ls.",
            tool_calls=(
                ToolCall("call_1", "exec_command", '{"cmd": "ls"}'),
                ToolCall("call_2", "exec_command", '{"cmd": "pwd"}'),
            ),
            reasoning="x",
        ),
        Message("tool", "a.txt", tool_call_id="call_1"),
        Message("tool", "/work", tool_call_id="call_2"),
    )
    assert [t["function"]["name"] for t in parsed.request.tools] == ["exec_command"]
    assert parsed.not_offered == ("namespace",)  # the client runs a namespace's tools
    # the gateway's web search, kept to what the search returns (no page opened)
    assert parsed.request.uses == (ToolUse("web", "web", ("web_search",), kind="web_search"),)
    assert parsed.not_run == ()
    assert (parsed.notes.store, parsed.notes.summary, parsed.notes.prompt_cache_key) == (
        False,
        True,
        "thread-1",
    )


@pytest.mark.parametrize(
    ("choice", "expected", "offered"),
    [
        ("auto", ToolChoice(), True),
        ("required", ToolChoice("required"), True),
        ("none", ToolChoice(), False),
        (
            {"type": "function", "name": "exec_command"},
            ToolChoice("function", "exec_command"),
            True,
        ),
    ],
)
def test_tool_choice(choice, expected, offered):
    request = ask(tools=[FUNCTION], tool_choice=choice).request
    assert (request.tool_choice, bool(request.tools)) == (expected, offered)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ({"format": {"type": "text"}}, None),
        ({"format": {"type": "json_object"}}, ResponseFormat("json_object")),
        (
            {
                "format": {
                    "type": "json_schema",
                    "name": "trip",
                    "strict": True,
                    "schema": {"type": "object"},
                }
            },
            ResponseFormat("json_schema", {"type": "object"}),
        ),
        ({"verbosity": "low"}, None),
    ],
)
def test_text_format(text, expected):
    assert ask(text=text).request.response_format == expected


def test_continuing_puts_the_conversation_before_the_new_input():
    first = ask(instructions="Old rules.")
    earlier = [*first.notes.input_items, message_item("msg_9", "Hello!")]
    follow = continuing(ask(input="And?", instructions="New rules."), earlier)
    assert follow.request.messages == (
        Message("system", "New rules."),
        Message("user", "hi"),
        Message("assistant", "Hello!"),
        Message("user", "And?"),
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        pytest.param({"input": []}, "input", id="no-input"),
        pytest.param({"input": 5}, "input", id="input-type"),
        pytest.param(
            {"input": [{"type": "message", "role": "robot", "content": "x"}]},
            "input[0].role",
            id="role",
        ),
        pytest.param(
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "data:image/png;base64,AA=="}
                        ],
                    }
                ]
            },
            "input[0].content[0].image_url",
            id="an-image-that-is-not-one-is-named",
        ),
        pytest.param(
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
            id="call-without-id",
        ),
        pytest.param(
            {"input": [{"type": "item_reference", "id": "msg_1"}]},
            "input[0].type",
            id="item-reference",
        ),
        pytest.param({"tools": [{"type": "function"}]}, "tools[0].name", id="tool-name"),
        pytest.param({"tool_choice": "required"}, "tool_choice", id="required-without-tools"),
        pytest.param(
            {"tools": [FUNCTION], "tool_choice": {"type": "function", "name": "rm"}},
            "tool_choice.name",
            id="unknown-function",
        ),
        pytest.param(
            {"text": {"format": {"type": "json_schema", "schema": {"type": 3}}}},
            "text.format.schema",
            id="bad-schema",
        ),
        pytest.param({"max_output_tokens": 0}, "max_output_tokens", id="max-output-tokens"),
        pytest.param({"previous_response_id": 7}, "previous_response_id", id="previous-id"),
        pytest.param({"metadata": {"a": 1}}, "metadata", id="metadata"),
    ],
)
def test_bad_input_names_the_field(fields, param):
    with pytest.raises(InvalidRequestError) as error:
        ask(**fields)
    assert error.value.param == param


# -- whole answers ----------------------------------------------------------------------------


def test_a_whole_response_with_thoughts_text_and_calls():
    parsed = ask(tools=[FUNCTION], reasoning={"summary": "auto"}, max_output_tokens=64)
    completion = Completion(
        "Running it.",
        "tool_calls",
        Usage(30, 12, cached_tokens=20, reasoning_tokens=4),
        reasoning="Think.",
        tool_calls=(ToolCall("call_1", "exec_command", '{"cmd":"ls"}'),),
    )
    body = responses.render(parsed, "resp_1", "local", [completion])
    assert body["id"] == "resp_1" and body["object"] == "response"
    assert body["status"] == "completed" and body["incomplete_details"] is None
    reasoning, message, call = body["output"]
    assert reasoning["type"] == "reasoning" and reasoning["content"] == [
        {"type": "reasoning_text", "text": "Think."}
    ]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Think."}]
    assert message["content"][0]["text"] == "Running it."
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == (
        "function_call",
        "call_1",
        "exec_command",
        '{"cmd":"ls"}',
    )
    assert body["usage"] == {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 42,
    }
    assert body["max_output_tokens"] == 64 and body["tools"] == [FUNCTION]


def test_the_token_limit_leaves_it_incomplete():
    body = responses.render(ask(), "resp_1", "local", [Completion("Hal", "length", Usage(3, 3))])
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"


# -- streams ----------------------------------------------------------------------------------


def streamed(parsed, batches, kept=None) -> list:
    stream = ResponsesStream(parsed, "resp_1", "local")
    stream.kept = kept
    return payloads(stream.render(iter(batches)))


def replay(events: list) -> dict:
    """Put the response together as the openai SDK does, checking order and numbering."""
    assert [e["sequence_number"] for e in events if e is not COMMENT] == list(
        range(len([e for e in events if e is not COMMENT]))
    )
    events = [e for e in events if e is not COMMENT]
    assert events[0]["type"] == "response.created" and events[0]["response"]["output"] == []
    assert events[1]["type"] == "response.in_progress"
    output = []
    for event in events[2:-1]:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert event["output_index"] == len(output)
            output.append(json.loads(json.dumps(event["item"])))
        elif kind == "response.content_part.added":
            item = output[event["output_index"]]
            if item["type"] == "message":
                item["content"].append(dict(event["part"]))
        elif kind == "response.output_text.delta":
            output[event["output_index"]]["content"][event["content_index"]]["text"] += event[
                "delta"
            ]
        elif kind == "response.function_call_arguments.delta":
            output[event["output_index"]]["arguments"] += event["delta"]
        elif kind == "response.output_item.done":
            done = event["item"]
            if done["type"] == "message":
                assert done["content"] == output[event["output_index"]]["content"]
            if done["type"] == "function_call":
                assert done["arguments"] == output[event["output_index"]]["arguments"]
            output[event["output_index"]] = done
    assert output == events[-1]["response"]["output"]
    return events[-1]


def test_every_item_streams_in_order_with_numbers():
    parsed = ask(tools=[FUNCTION], reasoning={"summary": "auto"})
    kept = []
    events = streamed(
        parsed,
        [
            [WAITING],
            [ReasoningDelta("Th"), ReasoningDelta("ink.")],
            [TextDelta("Run")],
            [TextDelta("ning it.")],
            [
                ToolCallStart(0, "call_1", "exec_command"),
                ToolCallDelta(0, '{"cmd":'),
                ToolCallDelta(0, '"ls"}'),
                ToolCallEnd(0),
            ],
            [UsageReport(Usage(30, 12, reasoning_tokens=4)), Finish("tool_calls")],
        ],
        kept.append,
    )
    assert events[2] is COMMENT
    last = replay(events)
    assert last["type"] == "response.completed"
    whole = responses.render(
        parsed,
        "resp_1",
        "local",
        [
            Completion(
                "Running it.",
                "tool_calls",
                Usage(30, 12, reasoning_tokens=4),
                reasoning="Think.",
                tool_calls=(ToolCall("call_1", "exec_command", '{"cmd":"ls"}'),),
            )
        ],
    )

    def without_ids(response):
        return [{k: v for k, v in item.items() if k != "id"} for item in response["output"]]

    assert without_ids(last["response"]) == without_ids(whole)
    assert last["response"]["usage"] == whole["usage"]
    assert kept == [last["response"]]
    kinds = [e["type"] for e in events if e is not COMMENT]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_llama_servers_own_telemetry_rides_its_stream_as_it_writes_it():
    """The prompt's progress in a ``response.in_progress`` of its own, the timings on the
    next text delta and on the last event, where the client asked the server for them."""
    progress = {"total": 40, "cache": 0, "processed": 32, "time_ms": 3}
    timings = {"prompt_per_second": 900.0, "predicted_per_second": 80.0}
    events = streamed(
        ask(),
        [
            [Extras({"prompt_progress": progress})],
            [Extras({"timings": timings}), TextDelta("Hi")],
            [TextDelta(" there")],
            [UsageReport(Usage(40, 2)), Finish("stop")],
        ],
    )
    last = replay(events)
    told = [e for e in events if "prompt_progress" in e]
    assert [(e["type"], e["prompt_progress"]) for e in told] == [("response.in_progress", progress)]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [d.get("timings") for d in deltas] == [timings, None]
    assert (
        last["timings"] == timings
        and last["response"]["output"][0]["content"][0]["text"] == "Hi there"
    )


def test_a_parsed_body_carries_llama_servers_asks_for_its_telemetry():
    request = parse({"input": "hi", "timings_per_token": True, "return_progress": False}).request
    assert request.unread == {"timings_per_token": True, "return_progress": False}


@pytest.mark.parametrize("cut", range(1, 12))
def test_calls_streamed_at_any_boundary_join_to_their_arguments(cut):
    arguments = '{"cmd":"ls -la"}'
    pieces = [arguments[:cut], arguments[cut:]]
    batches = [
        [
            ToolCallStart(0, "call_1", "exec_command"),
            *[ToolCallDelta(0, piece) for piece in pieces if piece],
            ToolCallEnd(0),
        ],
        [UsageReport(Usage(3, 5)), Finish("tool_calls")],
    ]
    last = replay(streamed(ask(tools=[FUNCTION]), batches))
    assert json.loads(last["response"]["output"][0]["arguments"]) == {"cmd": "ls -la"}


def test_the_limit_ends_it_incomplete_and_nothing_said_is_an_empty_message():
    events = streamed(ask(), [[UsageReport(Usage(3, 0)), Finish("length")]])
    last = replay(events)
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["output"][0]["content"][0]["text"] == ""


def test_a_failure_after_the_first_byte_is_response_failed():
    stream = ResponsesStream(ask(), "resp_1", "local")
    writes = stream.render(iter([[TextDelta("Hal")]]))
    first = next(writes)
    (failed,) = stream.failure(UpstreamError("the server died"))
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == len(first)
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "bad_gateway", "message": "the server died"}


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        ({"store": False}, True),  # nothing for the proxy to keep: a Responses server takes it
        ({}, False),  # stored by default
        ({"store": True}, False),
        ({"store": False, "previous_response_id": "resp_1"}, False),  # the proxy replays it
        ({"store": False, "tools": [{"type": "web_search"}]}, False),  # the gateway runs it
    ],
)
def test_a_body_the_proxy_keeps_nothing_of_is_kept_whole_for_a_responses_server(fields, kept):
    body = {"input": "hi", **fields}
    (request,) = parse(body).requests
    assert (request.verbatim is not None and request.verbatim.body is body) is kept


def test_a_stream_the_upstream_wrote_passes_as_it_wrote_it_the_model_renamed():
    ask = parse({"input": "hi", "store": False, "stream": True})
    renderer = ResponsesStream(ask, "resp_proxy", "asked")
    created = b'data: {"type":"response.created","response":{"id":"r","model":"up"}}'
    lines = (b"event: response.created", created, b"")
    (written,) = renderer.write([Passed(lines)])
    assert (
        renderer.passed and b'"model": "asked"' in written and b"event: response.created" in written
    )
    assert responses.render(ask, "resp_proxy", "asked", [
        Completion("x", "stop", Usage(), verbatim={"id": "r", "model": "up"})
    ]) == {"id": "r", "model": "asked"}  # fmt: skip
