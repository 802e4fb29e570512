"""Chats as a Messages API server reads them, and its answers read back, whole and
streamed; what the API has no field for refused by the name the client gave it."""

from __future__ import annotations

import json

import pytest

from proxy.backends.anthropic import reply
from proxy.backends.anthropic.payload import (
    DEFAULT_MAX_TOKENS,
    filled,
    messages_body,
    refusal,
    unsent,
)
from proxy.core.answers import Chunk, ToolCallPiece, Usage
from proxy.core.errors import UpstreamError
from proxy.core.events import Passed
from proxy.core.types import (
    GenerationRequest,
    Image,
    Message,
    Sampling,
    Sound,
    ToolCall,
    ToolChoice,
)

TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
CALL = ToolCall("call_1", "weather", '{"city": "Paris"}')


def test_a_conversation_as_the_messages_apis_turns():
    request = GenerationRequest(
        messages=(
            Message("system", "Be brief."),
            Message(
                "user",
                "Look: ",
                images=(Image("messages", at=6, media_type="image/png", data="AAAA"),),
            ),
            Message("assistant", "", tool_calls=(CALL,)),
            Message("tool", "Sunny", tool_call_id="call_1"),
            Message("user", "Thanks"),
        ),
        stop=("\n\n",),
        sampling=Sampling(temperature=0.2, top_k=5),
        tools=(TOOL,),
        tool_choice=ToolChoice("function", "weather"),
        parallel_tool_calls=False,
    )
    assert messages_body(request, "claude-like", stream=True) == {
        "model": "claude-like",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "stream": True,
        "system": "Be brief.",
        "stop_sequences": ["\n\n"],
        "temperature": 0.2,
        "top_k": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look: "},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "weather",
                        "input": {"city": "Paris"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
    }


CHAT = (Message("user", "hi"),)


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (GenerationRequest(prompt="once"), "prompt"),
        (GenerationRequest(messages=CHAT, grammar="root ::= x"), "grammar"),
        (GenerationRequest(messages=CHAT, logprobs=1), "logprobs"),
        (GenerationRequest(messages=CHAT, sampling=Sampling(seed=1)), "seed"),
        (GenerationRequest(messages=CHAT, sampling=Sampling(logit_bias=((1, 2.0),))), "logit_bias"),
        (
            GenerationRequest(messages=CHAT, template_kwargs={"enable_thinking": True}),
            "chat_template_kwargs",
        ),
        (
            GenerationRequest(
                messages=(Message("assistant", "", tool_calls=(ToolCall("c", "f", "{no"),)),)
            ),
            "messages",
        ),
        (
            GenerationRequest(
                messages=(
                    Message(
                        "user",
                        "",
                        sounds=(Sound("m[0].c[0].input_audio.data", 0, "wav", "UklGRg=="),),
                    ),
                )
            ),
            "m[0].c[0].input_audio.data",
        ),  # fmt: skip
        (GenerationRequest(messages=CHAT, sampling=Sampling(temperature=0, top_p=0.9)), None),
    ],
)
def test_what_the_messages_api_has_no_field_for_is_refused_by_name(request_, param):
    error = refusal(request_, "the server of model 'claude'")
    assert (error.param if error else None) == param


def test_what_the_operator_strips_goes_unsent_rather_than_refused():
    request_ = GenerationRequest(
        messages=(Message("user", "hi"),), sampling=Sampling(seed=3, min_p=0.1)
    )
    assert list(unsent(request_)) == ["min_p", "seed"]
    assert refusal(request_, "the server", ("seed",)).param == "min_p"
    assert refusal(request_, "the server", ("seed", "min_p")) is None
    assert "seed" not in messages_body(request_, "m", stream=False)


@pytest.mark.parametrize(("max_tokens", "filled_"), [(None, ("max_tokens",)), (64, ())])
def test_the_limit_the_api_requires_is_the_proxys_when_the_client_gave_none(max_tokens, filled_):
    request_ = GenerationRequest(messages=(Message("user", "hi"),), max_tokens=max_tokens)
    assert filled(request_) == filled_


def test_a_whole_answer():
    answer = reply.completion(
        {
            "content": [
                {"type": "thinking", "thinking": "Hmm."},
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 30, "output_tokens": 7},
        },
        "the server",
    )
    assert (answer.text, answer.reasoning, answer.finish_reason) == (
        "Let me look.",
        "Hmm.",
        "tool_calls",
    )
    assert answer.tool_calls == (ToolCall("toolu_1", "weather", '{"city": "Paris"}'),)
    assert answer.usage == Usage(40, 7, 30)


def events(*bodies) -> list:
    return [
        [f"event: {b['type']}".encode(), f"data: {json.dumps(b)}".encode(), b""] for b in bodies
    ]


def test_a_streamed_answer():
    chunks = list(
        reply.stream_chunks(
            events(
                {"type": "message_start", "message": {"usage": {"input_tokens": 12}}},
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hi"},
                },
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "tool_use", "id": "t1", "name": "weather"},
                },
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city"'},
                },
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": ': "Paris"}'},
                },
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use"},
                    "usage": {"output_tokens": 9, "server_tool_use": {"web_search_requests": 1}},
                },
                {"type": "message_stop"},
            ),
            "the server",
        )
    )
    assert chunks[0].prompt_count == 12 and chunks[1].text == "Hi"
    assert [piece for chunk in chunks for piece in chunk.tool_calls] == [
        ToolCallPiece(0, "", "t1", "weather"),
        ToolCallPiece(0, '{"city"'),
        ToolCallPiece(0, ': "Paris"}'),
    ]
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage == Usage(12, 9, None, web_searches=1)


def test_a_stream_cut_short_or_an_error_event_is_an_error():
    with pytest.raises(UpstreamError, match="ended the stream"):
        list(reply.stream_chunks(events({"type": "message_start", "message": {}}), "the server"))
    with pytest.raises(UpstreamError, match="overloaded"):
        list(
            reply.stream_chunks(
                events(
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "overloaded"},
                    }
                ),
                "the server",
            )
        )


@pytest.mark.parametrize(
    ("answer", "tokens"),
    [({"input_tokens": 12}, 12), ({"input_tokens": -1}, None), ({}, None), ([], None)],
)
def test_a_token_count_the_server_told(answer, tokens):
    if tokens is None:
        with pytest.raises(UpstreamError, match="without input_tokens"):
            reply.counted(answer, "the server")
    else:
        assert reply.counted(answer, "the server") == tokens


def test_a_stream_passed_on_keeps_every_line_and_still_tells_what_it_holds():
    lines = events(
        {"type": "message_start", "message": {"usage": {"input_tokens": 5}}},
        {"type": "ping"},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sealed"},
        },
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "a_kind_from_next_year"},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    )
    told = list(reply.verbatim_chunks(lines, "the server"))
    passed = [each.lines for each in told if type(each) is Passed]
    assert passed == [tuple(read) for read in lines]  # one read each here, every line kept
    chunks = [each for each in told if type(each) is Chunk]
    assert type(told[0]) is Passed and told.index(chunks[0]) > 0  # the lines first
    assert chunks[0].prompt_count == 5 and "".join(chunk.text for chunk in chunks) == "Hi"
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage == Usage(5, 2, None)


@pytest.mark.parametrize(
    "reported, searches",
    [
        ({"input_tokens": 3, "output_tokens": 1}, 0),
        ({"input_tokens": 3, "output_tokens": 1, "server_tool_use": {"web_search_requests": 2}},
         2),
        ({"input_tokens": 3, "output_tokens": 1, "server_tool_use": None}, 0),
        ({"input_tokens": 3, "output_tokens": 1, "server_tool_use": {"web_search_requests": "x"}},
         0),
    ],
)  # fmt: skip
def test_the_searches_an_upstream_ran_itself_are_read_from_its_usage(reported, searches):
    assert reply.usage(reported) == Usage(3, 1, web_searches=searches)
