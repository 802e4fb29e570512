"""Anthropic's Messages API both ways: bodies into requests, the core's events into messages
and Anthropic's event sequence."""

from __future__ import annotations

import json

import pytest

from proxy.api.serve import left_out_headers
from proxy.core.answers import Completion, Usage
from proxy.core.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    UntranslatableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from proxy.core.events import (
    WAITING,
    Finish,
    Passed,
    PromptCounted,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageReport,
)
from proxy.core.types import Message, ToolCall, ToolChoice
from proxy.dialects import anthropic as messages
from proxy.dialects.anthropic import MessagesStream, parse
from proxy.dialects.anthropic.answer import signature
from proxy.dialects.dialect import Ask

from .payloads import accumulate, payloads

HI = [{"role": "user", "content": "hi"}]
TOOL = {
    "name": "get_weather",
    "description": "Weather now",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    "cache_control": {"type": "ephemeral"},
}


def ask(**fields) -> Ask:
    return parse({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HI, **fields})


# -- requests -------------------------------------------------------------------------------


def test_a_minimal_request():
    parsed = ask()
    assert parsed.request.model == "claude-sonnet-4-5" and parsed.request.max_tokens == 64
    assert parsed.request.messages == (Message("user", "hi"),)
    assert (parsed.stream, parsed.notes.thinking, parsed.not_offered) == (False, False, ())


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        pytest.param("Be brief.", "Be brief.", id="string"),
        pytest.param(
            [
                {"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Two."},
            ],
            "One.\n\nTwo.",
            id="blocks",
        ),
        pytest.param(
            [
                {
                    "type": "text",
                    "text": "x-anthropic-billing-header: cc_version=2.1.330.440;"
                    " cc_entrypoint=sdk-cli;",
                },
                {"type": "text", "text": "You are Claude Code."},
            ],
            "You are Claude Code.",
            id="claude-codes-volatile-header-left-out",
        ),
    ],
)
def test_the_system_prompt(system, expected):
    assert ask(system=system).request.messages[0] == Message("system", expected)


def test_a_tool_round_trip_becomes_the_chats_calls_and_results():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should look.", "signature": "s"},
                {"type": "text", "text": "Looking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "sunny"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "no such city",
                    "is_error": True,
                },
                {"type": "text", "text": "Thanks", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ]
    request = ask(messages=history, tools=[TOOL]).request
    assert request.messages == (
        Message("user", "Weather in Oslo?"),
        Message(
            "assistant",
            "Looking.",
            tool_calls=(ToolCall("toolu_1", "get_weather", '{"city":"Oslo"}'),),
            reasoning="I should look.",
        ),
        Message("tool", "sunny", tool_call_id="toolu_1"),
        Message("tool", "Error: no such city", tool_call_id="toolu_2"),
        Message("user", "Thanks"),
    )
    assert request.tools == (
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": TOOL["input_schema"],
                "description": "Weather now",
            },
        },
    )


def test_tools_anthropic_runs_are_not_offered_and_named():
    parsed = ask(
        tools=[
            TOOL,
            {"type": "code_execution_20250825", "name": "code_execution"},
            {"type": "bash_20250124", "name": "bash"},
        ]
    )
    assert [t["function"]["name"] for t in parsed.request.tools] == ["get_weather"]
    assert parsed.not_offered == ("code_execution", "bash")
    assert parsed.not_run == ("code_execution_20250825",)  # bash runs on the client
    tools = [TOOL, {"type": "code_execution_20250825", "name": "c"}]
    body = {"model": "m", "max_tokens": 8, "messages": HI, "tools": tools}
    assert parse(body, passing=True).not_run == ()  # its server runs them
    assert left_out_headers(messages, parsed) == {
        "x-oai-proxy-left-out-tools": "code_execution, bash"
    }


@pytest.mark.parametrize(
    ("choice", "mode", "parallel", "offered"),
    [
        pytest.param(None, ToolChoice(), None, True, id="default-auto"),
        pytest.param({"type": "auto"}, ToolChoice(), None, True, id="auto"),
        pytest.param({"type": "any"}, ToolChoice("required"), None, True, id="any"),
        pytest.param(
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            ToolChoice("function", "get_weather"),
            False,
            True,
            id="tool",
        ),
        pytest.param({"type": "none"}, ToolChoice(), None, False, id="none"),
    ],
)
def test_tool_choice(choice, mode, parallel, offered):
    request = ask(tools=[TOOL], **({"tool_choice": choice} if choice else {})).request
    assert (request.tool_choice, request.parallel_tool_calls, bool(request.tools)) == (
        mode,
        parallel,
        offered,
    )


@pytest.mark.parametrize(
    ("thinking", "shown"),
    [
        ({"type": "enabled", "budget_tokens": 31999}, True),
        ({"type": "adaptive"}, True),
        ({"type": "disabled"}, False),
        (None, False),
    ],
)
def test_thinking_shows_the_thoughts_or_not(thinking, shown):
    assert ask(**({"thinking": thinking} if thinking else {})).notes.thinking is shown


def test_sampling_stops_and_unknown_fields():
    parsed = ask(
        temperature=0.2,
        top_p=0.9,
        top_k=5,
        stop_sequences=["END", ""],
        metadata={"user_id": '{"session_id": "x"}'},
        stream=True,
        context_management={"edits": []},
        output_config={"effort": "high"},
    )
    sampling = parsed.request.sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k) == (0.2, 0.9, 5)
    assert parsed.request.stop == ("END",) and parsed.notes.stop_sequences == ("END",)
    assert parsed.stream


def test_count_tokens_needs_no_max_tokens():
    assert parse({"messages": HI}, counting=True).request.max_tokens is None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        pytest.param({"max_tokens": None}, "max_tokens", id="max-tokens-required"),
        pytest.param({"max_tokens": 0}, "max_tokens", id="max-tokens-positive"),
        pytest.param({"messages": []}, "messages", id="no-messages"),
        pytest.param(
            {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", id="role"
        ),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "look"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "AA==",
                                },
                            },
                        ],
                    }
                ]
            },
            "messages[0].content[1].source.data",
            id="an-image-that-is-not-one-is-named",
        ),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "image", "source": {}}],
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].content[0].source.type",
            id="an-image-in-a-tool-result",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
            id="unknown-block",
        ),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "[]"}],
                    }
                ]
            },
            "messages[0].content[0].input",
            id="tool-input-not-an-object",
        ),
        pytest.param({"system": [{"type": "image"}]}, "system[0].type", id="system-block"),
        pytest.param({"tools": [{"name": "f"}]}, "tools[0].input_schema", id="custom-tool-schema"),
        pytest.param(
            {"tools": [TOOL], "tool_choice": {"type": "tool", "name": "web_search"}},
            "tool_choice.name",
            id="tool-choice-names-an-unknown-tool",
        ),
        pytest.param({"tool_choice": {"type": "any"}}, "tool_choice.type", id="any-without-tools"),
        pytest.param({"thinking": {"type": "sometimes"}}, "thinking.type", id="thinking-type"),
        pytest.param({"temperature": 1.5}, "temperature", id="temperature-range"),
        pytest.param({"model": ["claude"]}, "model", id="model-not-a-string"),
    ],
)
def test_bad_input_names_the_field(fields, param):
    body = {"model": "m", "max_tokens": 64, "messages": HI, **fields}
    body = {key: value for key, value in body.items() if value is not None}
    with pytest.raises(InvalidRequestError) as error:
        parse(body)
    assert error.value.param == param


# -- whole answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "stop_sequence", "calls", "reason", "sequence"),
    [
        pytest.param("stop", None, (), "end_turn", None, id="end_turn"),
        pytest.param("stop", "<|im_end|>", (), "end_turn", None, id="a-template-stop-word"),
        pytest.param("stop", "END", (), "stop_sequence", "END", id="stop_sequence"),
        pytest.param("length", None, (), "max_tokens", None, id="max_tokens"),
        pytest.param(
            "tool_calls",
            None,
            (ToolCall("call_1", "get_weather", '{"city":"Oslo"}'),),
            "tool_use",
            None,
            id="tool_use",
        ),
    ],
)
def test_every_stop_reason(finish, stop_sequence, calls, reason, sequence):
    completion = Completion("", finish, Usage(10, 3), tool_calls=calls, stop_sequence=stop_sequence)
    body = messages.render(ask(stop_sequences=["END"]), "msg_1", "m", [completion])
    assert (body["stop_reason"], body["stop_sequence"]) == (reason, sequence)


def test_a_whole_message_with_thoughts_text_and_calls():
    completion = Completion(
        "Here.",
        "tool_calls",
        Usage(10, 3, cached_tokens=8),
        reasoning="Think.",
        tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Oslo"}'),),
    )
    body = messages.render(
        ask(thinking={"type": "enabled", "budget_tokens": 2000}), "msg_1", "claude", [completion]
    )
    assert body == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "Think.", "signature": signature("Think.")},
            {"type": "text", "text": "Here."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 2,
            "output_tokens": 3,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 8,
        },
    }


def test_thoughts_are_hidden_unless_asked_for():
    completion = Completion("Hi.", "stop", Usage(1, 1), reasoning="Think.")
    assert [b["type"] for b in messages.render(ask(), "m", "m", [completion])["content"]] == [
        "text"
    ]


# -- streams ----------------------------------------------------------------------------------


def streamed(parsed: Ask, batches) -> list:
    stream = MessagesStream(parsed, "msg_1", "claude")
    return payloads(stream.render(iter(batches)))


def test_blocks_follow_one_another_with_contiguous_indices():
    parsed = ask(thinking={"type": "enabled", "budget_tokens": 2000})
    batches = [
        [PromptCounted(10), ReasoningDelta("Th")],
        [ReasoningDelta("ink.")],
        [TextDelta("Here"), TextDelta(".")],
        [
            ToolCallStart(0, "call_1", "get_weather"),
            ToolCallDelta(0, '{"city":'),
            ToolCallDelta(0, '"Oslo"}'),
            ToolCallEnd(0),
            ToolCallStart(1, "call_2", "get_weather"),
            ToolCallDelta(1, "{}"),
            ToolCallEnd(1),
        ],
        [UsageReport(Usage(10, 7, cached_tokens=4)), Finish("tool_calls")],
    ]
    events = streamed(parsed, batches)
    assert events[0]["message"]["usage"]["input_tokens"] == 10
    whole = messages.render(
        parsed,
        "msg_1",
        "claude",
        [
            Completion(
                "Here.",
                "tool_calls",
                Usage(10, 7, cached_tokens=4),
                reasoning="Think.",
                tool_calls=(
                    ToolCall("call_1", "get_weather", '{"city":"Oslo"}'),
                    ToolCall("call_2", "get_weather", "{}"),
                ),
            )
        ],
    )
    assert accumulate(events) == {**whole, "usage": {**whole["usage"]}}
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == [
        "thinking",
        "text",
        "tool_use",
        "tool_use",
    ]
    signature = [e for e in events if e.get("delta", {}).get("type") == "signature_delta"]
    assert len(signature) == 1 and events[events.index(signature[0]) + 1] == {
        "type": "content_block_stop",
        "index": 0,
    }


@pytest.mark.parametrize(("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens")])
def test_an_answer_without_text_still_has_a_text_block(finish, reason):
    events = streamed(ask(), [[UsageReport(Usage(3, 0)), Finish(finish)]])
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2]["delta"] == {"stop_reason": reason, "stop_sequence": None}
    assert accumulate(events)["content"] == [{"type": "text", "text": ""}]


def test_hidden_thoughts_open_no_block_and_waiting_is_a_ping():
    events = streamed(
        ask(),
        [
            [WAITING],
            [WAITING],
            [ReasoningDelta("Think.")],
            [TextDelta("Hi")],
            [UsageReport(Usage(3, 2)), Finish("stop")],
        ],
    )
    assert [e["type"] for e in events][:3] == ["message_start", "ping", "ping"]
    assert accumulate(events)["content"] == [{"type": "text", "text": "Hi"}]


def test_a_stop_sequence_is_told_in_the_message_delta():
    events = streamed(
        ask(stop_sequences=["END"]),
        [[TextDelta("a")], [UsageReport(Usage(3, 1)), Finish("stop", "END")]],
    )
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert events[-2]["usage"]["output_tokens"] == 1


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequestError("bad"), 400, "invalid_request_error"),
        (AuthenticationError("who?"), 401, "authentication_error"),
        (PermissionDeniedError("no"), 403, "permission_error"),
        (ModelNotFoundError("none"), 404, "not_found_error"),
        (RateLimitError("slow down"), 429, "rate_limit_error"),
        (UpstreamError("broken"), 502, "api_error"),
        (QueueFullError("busy"), 503, "overloaded_error"),
        (UpstreamTimeoutError("slow"), 504, "timeout_error"),
    ],
)
def test_errors_in_anthropics_shape(error, status, kind):
    assert error.status == status
    assert messages.error_body(error) == {
        "type": "error",
        "error": {"type": kind, "message": error.message},
    }
    assert MessagesStream.failure(error) == [messages.error_body(error)]


def test_a_prompt_too_long_is_told_as_anthropic_tells_it():
    error = ContextLengthError(prompt_tokens=210432, limit=131072)
    assert (error.status, messages.error_body(error)) == (
        400,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 210432 tokens > 131072 maximum",
            },
        },
    )


# -- answers its upstream wrote in this API -----------------------------------------------------


def sse(*bodies) -> tuple:
    return tuple(
        line
        for body in bodies
        for line in (f"event: {body['type']}".encode(), f"data: {json.dumps(body)}".encode(), b"")
    )


UPSTREAM_START = {
    "type": "message_start",
    "message": {"id": "msg_up", "model": "claude-up", "usage": {"input_tokens": 9}},
}
SEALED = {
    "type": "content_block_delta",
    "index": 0,
    "delta": {"type": "signature_delta", "signature": "s"},
}
DELTA = {
    "type": "message_delta",
    "delta": {"stop_reason": "end_turn"},
    "usage": {"output_tokens": 2},
}


def passed_on(batches) -> list:
    """The events a client reads (the proxy's own payloads, and the upstream's lines)."""
    stream = MessagesStream(ask(), "msg_1", "claude")
    pieces = [piece for write in stream.render(iter(batches)) for piece in write]
    assert stream.passed
    return [
        line if isinstance(line, dict) else json.loads(line[6:])
        for piece in pieces
        for line in (piece.split(b"\n") if isinstance(piece, bytes) else [piece])
        if isinstance(line, dict) or line.startswith(b"data: ")
    ]


def test_a_stream_its_upstream_wrote_goes_on_line_by_line_naming_the_model_asked_for():
    bodies = [UPSTREAM_START, SEALED, {"type": "a_kind_from_next_year"}, DELTA]
    events = passed_on(
        [[Passed(sse(*bodies[:2])), PromptCounted(9)], [Passed(sse(*bodies[2:])), TextDelta("x")]]
    )
    assert events[0]["message"] == {**UPSTREAM_START["message"], "model": "claude"}
    assert events[1:] == bodies[1:]  # the events the proxy does not know, too


def test_a_stream_that_waited_keeps_its_own_start_and_the_upstreams_usage():
    events = passed_on([[WAITING], [Passed(sse(UPSTREAM_START, SEALED, DELTA))]])
    assert [e["type"] for e in events] == ["message_start", "ping", SEALED["type"], "message_delta"]
    assert events[0]["message"]["id"] == "msg_1"
    assert events[-1]["usage"] == {"input_tokens": 9, "output_tokens": 2}


def test_a_whole_message_its_upstream_wrote_is_its_own_naming_the_model_asked_for():
    own = {"id": "msg_up", "model": "claude-up", "content": [{"type": "redacted_thinking"}]}
    completion = Completion("", "stop", Usage(), verbatim=own)
    assert messages.render(ask(), "msg_1", "claude", [completion]) == {**own, "model": "claude"}


def test_the_request_carries_the_clients_own_body_for_an_upstream_of_the_same_api():
    body = {"model": "m", "max_tokens": 8, "messages": HI, "container": "c-1"}
    (request,) = parse(body).requests
    assert request.verbatim.api == "anthropic" and request.verbatim.body is body


UNREADABLE = [{"role": "user", "content": [{"type": "container_upload", "file_id": "f"}]}]


def test_a_body_the_proxy_cannot_read_goes_as_it_came_to_a_server_of_its_api():
    body = {"model": "m", "max_tokens": 8, "messages": UNREADABLE, "stream": True}
    with pytest.raises(UntranslatableError, match="container_upload"):
        parse(body)
    passed = parse(body, passing=True)
    (request,) = passed.requests
    assert passed.stream and request.model == "m" and request.max_tokens == 8
    assert request.verbatim.body is body and "container_upload" in str(
        request.verbatim.untranslated
    )
    with pytest.raises(InvalidRequestError, match="max_tokens"):  # what is wrong stays wrong
        parse({**body, "max_tokens": 0}, passing=True)
