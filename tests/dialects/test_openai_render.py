"""The core's events rendered as OpenAI chat and completion chunks, and whole answers."""

from __future__ import annotations

import pytest

from proxy.core.answers import Completion, TokenLogprob, Usage
from proxy.core.errors import ContextLengthError, UpstreamError
from proxy.core.events import (
    WAITING,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageReport,
)
from proxy.core.sse import COMMENT
from proxy.core.types import GenerationRequest, ToolCall
from proxy.dialects import glm
from proxy.dialects.dialect import Ask
from proxy.dialects.openai import answer as openai
from proxy.dialects.openai import chat as openai_chat
from proxy.dialects.openai import completions as openai_completions
from proxy.dialects.openai.request import Delivery

from .payloads import decoded, payloads

CHAT = GenerationRequest(messages=())


def choices(requests, n=1, stream=False, include_usage=False, echo=False) -> Ask:
    return Ask(tuple(requests), n, stream, Delivery(include_usage, echo))


def chat_stream(batches, n=1, include_usage=False) -> list:
    """Each write's chunks, as (delta, finish_reason, index); comments as COMMENT."""
    stream = openai_chat.stream(choices((CHAT,), n, True, include_usage), "chatcmpl-1", "m")
    writes = []
    for write in stream.render(iter(batches)):
        write = [decoded(each) for each in write]
        writes.append(
            [
                each
                if each is COMMENT
                else (
                    each["choices"][0]["delta"],
                    each["choices"][0]["finish_reason"],
                    each["choices"][0]["index"],
                )
                if each["choices"]
                else each["usage"]
                for each in write
            ]
        )
    return writes


def done(reason="stop", usage=Usage(3, 2)) -> list:
    return [UsageReport(usage), Finish(reason)]


ROLE = {"role": "assistant", "content": ""}


@pytest.mark.parametrize(
    ("batches", "writes"),
    [
        pytest.param(
            [[TextDelta("Hel"), TextDelta("lo")], done()],
            [
                [(ROLE, None, 0), ({"content": "Hel"}, None, 0), ({"content": "lo"}, None, 0)],
                [({}, "stop", 0)],
            ],
            id="text-read-together-leaves-together",
        ),
        pytest.param([done("length")], [[(ROLE, None, 0), ({}, "length", 0)]], id="no-text"),
        pytest.param(
            [[ReasoningDelta("hmm")], [TextDelta("ok")], done()],
            [
                [(ROLE, None, 0), ({"reasoning_content": "hmm"}, None, 0)],
                [({"content": "ok"}, None, 0)],
                [({}, "stop", 0)],
            ],
            id="reasoning",
        ),
        pytest.param(
            [
                [
                    ToolCallStart(0, "call_1", "get"),
                    ToolCallDelta(0, '{"a":'),
                    ToolCallDelta(0, "1}"),
                    ToolCallEnd(0),
                ],
                done("tool_calls"),
            ],
            [
                [
                    (ROLE, None, 0),
                    (
                        {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_1",
                                    "type": "function",
                                    "function": {"name": "get", "arguments": ""},
                                }
                            ]
                        },
                        None,
                        0,
                    ),
                    ({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}, None, 0),
                    ({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, None, 0),
                ],
                [({}, "tool_calls", 0)],
            ],
            id="tool-call",
        ),
        pytest.param(
            [[WAITING], [WAITING], [TextDelta("x")], done()],
            [
                [COMMENT],
                [COMMENT],
                [(ROLE, None, 0), ({"content": "x"}, None, 0)],
                [({}, "stop", 0)],
            ],
            id="waiting-is-a-comment",
        ),
    ],
)
def test_chat_chunks_from_events(batches, writes):
    assert chat_stream(batches) == writes


def test_every_choice_begins_with_its_role_and_usage_comes_last():
    writes = chat_stream(
        [[TextDelta("a")], done(usage=Usage(3, 1)), [TextDelta("b")], done(usage=Usage(0, 2))],
        n=2,
        include_usage=True,
    )
    assert writes == [
        [(ROLE, None, 0), ({"content": "a"}, None, 0)],
        [({}, "stop", 0)],
        [(ROLE, None, 1), ({"content": "b"}, None, 1)],
        [({}, "stop", 1)],
        [{"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}],
    ]


def test_chunks_share_the_answers_id_model_and_time():
    stream = openai_chat.stream(choices((CHAT,), 1, True, True), "chatcmpl-7", "qwen")
    chunks = payloads(stream.render(iter([[TextDelta("a")], done()])))
    assert {(c["id"], c["object"], c["model"], c["created"]) for c in chunks} == {
        ("chatcmpl-7", "chat.completion.chunk", "qwen", stream.created)
    }


def test_logprobs_travel_with_their_text():
    token = TokenLogprob("a", -0.5, None, (("a", -0.5, None), ("b", -1.0, (98,))))
    stream = openai_chat.stream(choices((CHAT,), 1, True, False), "c", "m")
    first = next(stream.render(iter([[TextDelta("a", (token,))]])))
    assert first[1]["choices"][0]["logprobs"] == {
        "content": [
            {
                "token": "a",
                "logprob": -0.5,
                "bytes": [97],
                "top_logprobs": [
                    {"token": "a", "logprob": -0.5, "bytes": [97]},
                    {"token": "b", "logprob": -1.0, "bytes": [98]},
                ],
            }
        ]
    }


def test_a_failure_after_the_first_byte_is_one_error_event():
    error = UpstreamError("cut", code="bad_gateway")
    assert openai_chat.ChatStream.failure(error) == [
        {
            "error": {
                "message": "cut",
                "type": "upstream_error",
                "param": None,
                "code": "bad_gateway",
            }
        }
    ]


def test_a_whole_chat_answer():
    calls = (ToolCall("call_1", "get", "{}"),)
    body = openai_chat.render(
        choices((CHAT,), 2),
        "chatcmpl-1",
        "m",
        [
            Completion(
                "", "tool_calls", Usage(4, 2, cached_tokens=3), tool_calls=calls, reasoning="think"
            ),
            Completion("hi", "stop", Usage(0, 1)),
        ],
    )
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "think",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{}"}}
        ],
    }
    assert body["choices"][1]["message"] == {"role": "assistant", "content": "hi"}
    assert body["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    assert body["truncated"] is False and "promptToken" not in body


# -- completions ------------------------------------------------------------------------------


def test_completion_chunks_echo_each_prompt_first():
    requests = (GenerationRequest(prompt="P"), GenerationRequest(prompt="Q"))
    stream = openai_completions.stream(choices(requests, 1, True, True, echo=True), "cmpl-1", "m")
    batches = [[TextDelta("a")], done(usage=Usage(1, 1)), [TextDelta("b")], done(usage=Usage(1, 1))]
    texts = [
        [
            (c["choices"][0]["index"], c["choices"][0]["text"], c["choices"][0]["finish_reason"])
            if c["choices"]
            else c["usage"]["total_tokens"]
            for c in write
        ]
        for write in stream.render(iter(batches))
    ]
    assert texts == [
        [(0, "P", None), (0, "a", None)],
        [(0, "", "stop")],
        [(1, "Q", None), (1, "b", None)],
        [(1, "", "stop")],
        [4],
    ]


def test_a_whole_completion_groups_choices_by_prompt():
    ask = choices((GenerationRequest(prompt="P"), GenerationRequest(prompt="Q")), 2, echo=True)
    completions = [Completion(t, "stop", Usage()) for t in "abcd"]
    body = openai_completions.render(ask, "cmpl-1", "m", completions)
    assert [c["text"] for c in body["choices"]] == ["Pa", "Pb", "Qc", "Qd"]
    assert body["object"] == "text_completion"


# -- the GLM API ----------------------------------------------------------------------------


def test_glm_stream_sends_deltas_then_the_whole_answer():
    stream = glm.GlmStream("glm")
    writes = list(
        stream.render(
            iter([[TextDelta("He"), TextDelta("")], [TextDelta("y")], done(usage=Usage(4, 2))])
        )
    )
    assert writes == [
        [{"delta": "He", "object": "chat.completion.chunk"}],
        [{"delta": "y", "object": "chat.completion.chunk"}],
        [
            {
                "content": "Hey",
                "prompt_tokens": 4,
                "completion_tokens": 2,
                "total_tokens": 6,
                "model": "glm",
                "object": "chat.completion",
                "finish_reason": "stop",
            }
        ],
    ]


def test_ids_are_new_each_time():
    assert openai_chat.new_id() != openai_chat.new_id()
    assert openai_chat.new_id().startswith("chatcmpl-")
    assert openai_completions.new_id().startswith("cmpl-")


def test_a_prompt_too_long_is_told_as_openai_tells_it():
    body = openai.error_body(ContextLengthError(prompt_tokens=5000, limit=4096))
    assert body == {
        "error": {
            "message": "This model's maximum context length is 4096 tokens. However, your "
            "messages resulted in 5000 tokens. Please reduce the length of the "
            "messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }


def test_a_prompt_too_long_for_llama_server_keeps_its_words_beside_openais_code():
    body = openai.error_body(ContextLengthError(5000, 4096, engine=True))
    assert {name: body["error"][name] for name in ("type", "code", "n_prompt_tokens", "n_ctx")} == {
        "type": "exceed_context_size_error",
        "code": "context_length_exceeded",
        "n_prompt_tokens": 5000,
        "n_ctx": 4096,
    }
    assert "maximum context length is 4096" in body["error"]["message"]
    assert "exceeds the available context size" in body["error"]["message"]
