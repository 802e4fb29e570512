"""The chat layer's translation, both ways: the body sent to the server's own chat route, and
its answers (whole and streamed) read into completions and chunks. Pure: table tests."""

from __future__ import annotations

import json

import pytest

from proxy.backends.servercpp import chatpayload
from proxy.backends.structured.callids import template_id
from proxy.backends.wire import chatparse
from proxy.backends.wire.events import stream_error
from proxy.core.answers import Chunk, ToolCallPiece, Usage, assembled
from proxy.core.errors import ContextLengthError, UpstreamError
from proxy.core.types import (
    GenerationRequest,
    Image,
    Message,
    ResponseFormat,
    Sampling,
    Sound,
    ToolCall,
    ToolChoice,
)
from tests.fakes.servercpp_wire import line_batches

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
HI = (Message("user", "hi"),)


def payload(
    stream: bool = False, reasoning: bool = True, short_ids: bool = False, **fields
) -> dict:
    return chatpayload.chat_payload(
        GenerationRequest(messages=fields.pop("messages", HI), **fields),
        stream=stream,
        reasoning=reasoning,
        short_ids=short_ids,
    )


def test_a_plain_chat_is_sent_as_it_came():
    # what the client leaves out the server decides, as for its own clients
    assert payload() == {"messages": [{"role": "user", "content": "hi"}], "stream": False}


def test_a_stream_asks_for_its_usage_and_its_prompts_progress():
    body = payload(stream=True, reasoning=False)
    assert body["stream_options"] == {"include_usage": True}
    # a model whose thoughts are to stay in its answer
    assert body["return_progress"] is True and body["reasoning_format"] == "none"


def test_every_field_the_server_reads_is_passed_on():
    body = payload(
        max_tokens=7,
        stop=("END",),
        logprobs=0,
        n_keep=4,
        cache_prompt=False,
        slot=1,
        sampling=Sampling(
            temperature=0.5, top_k=3, seed=9, min_p=0.1, logit_bias=((5, False), (6, 2.0))
        ),
        response_format=ResponseFormat("json_schema", {"type": "array"}),
        template_kwargs={"enable_thinking": False, "reasoning_effort": "low"},
    )
    assert body == {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "max_tokens": 7,
        # the proxy stops at the client's words itself: the server tells the usage so far
        "timings_per_token": True,
        "temperature": 0.5,
        "top_k": 3,
        "min_p": 0.1,
        "seed": 9,
        "logit_bias": [[5, False], [6, 2.0]],
        "logprobs": True,
        "top_logprobs": 1,
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "array"}}},
        "n_keep": 4,
        "cache_prompt": False,
        "id_slot": 1,
        "chat_template_kwargs": {"enable_thinking": False, "reasoning_effort": "low"},
    }


@pytest.mark.parametrize(
    "choice, parallel, tools, mode, sent_parallel",
    [
        # parallel calls left to what the model's template allows
        (ToolChoice(), None, ["get_weather", "get_time"], "auto", None),
        (ToolChoice(), True, ["get_weather", "get_time"], "auto", True),
        (ToolChoice("required"), False, ["get_weather", "get_time"], "required", False),
        # the server reads only the string forms: one named function is offered alone, required
        (ToolChoice("function", "get_time"), None, ["get_time"], "required", False),
    ],
    ids=["auto", "parallel", "required", "named"],
)
def test_tool_choice_in_the_forms_the_server_reads(choice, parallel, tools, mode, sent_parallel):
    body = payload(tools=(WEATHER, TIME), tool_choice=choice, parallel_tool_calls=parallel)
    assert [tool["function"]["name"] for tool in body["tools"]] == tools
    assert (body["tool_choice"], body.get("parallel_tool_calls")) == (mode, sent_parallel)


HISTORY = (
    Message("user", "weather?"),
    Message(
        "assistant",
        "",
        tool_calls=(ToolCall("toolu_01abc", "get_weather", '{"city": "Oslo"}'),),
        reasoning="Look it up.",
    ),
    Message("tool", "sunny", tool_call_id="toolu_01abc"),
    Message("function", "old", name="get_weather"),
)


@pytest.mark.parametrize("short_ids", [False, True], ids=["any-ids", "mistral-ids"])
def test_history_reaches_the_template_with_the_ids_it_takes_and_the_thoughts(short_ids):
    sent = payload(messages=HISTORY, short_ids=short_ids)["messages"]
    call_id = template_id("toolu_01abc") if short_ids else "toolu_01abc"
    assert sent[1] == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "Look it up.",
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": call_id}
    assert sent[3] == {"role": "tool", "content": "old", "name": "get_weather"}


def test_counting_sends_what_renders_the_prompt_only():
    request = GenerationRequest(
        messages=HI, tools=(WEATHER,), max_tokens=3, template_kwargs={"enable_thinking": True}
    )
    assert set(chatpayload.count_payload(request)) == {
        "messages",
        "tools",
        "tool_choice",
        "chat_template_kwargs",
    }


# -- whole answers --------------------------------------------------------------------------


def test_a_whole_answer_with_thoughts_and_calls():
    body = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "",
                    "reasoning_content": "Hmm.",
                    "tool_calls": [
                        {
                            "type": "function",
                            "id": "abc",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "completion_tokens": 15,
            "prompt_tokens": 893,
            "total_tokens": 908,
            "prompt_tokens_details": {"cached_tokens": 872},
        },
    }
    result = chatparse.completion(body, "http://up", None)
    assert (result.text, result.reasoning, result.finish_reason) == ("", "Hmm.", "tool_calls")
    assert result.tool_calls == (ToolCall("abc", "get_weather", '{"city":"Paris"}'),)
    assert result.usage == Usage(893, 15, 872)


@pytest.mark.parametrize(
    "told, usage",
    [
        ({"prompt_tokens": 9, "completion_tokens": 5}, Usage(9, 5)),
        (
            {"prompt_tokens": 9, "completion_tokens": 5,
             "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 3}},
            Usage(9, 5, 2, audio_prompt_tokens=3),
        ),
        (
            {"prompt_tokens": 9, "completion_tokens": 5,
             "prompt_tokens_details": {"audio_tokens": "3"}},
            Usage(9, 5),
        ),
        (
            {"prompt_tokens": 9, "completion_tokens": 5, "prompt_tokens_details": None},
            Usage(9, 5),
        ),
    ],
    ids=["none", "audio", "not-counts", "no-details"],
)  # fmt: skip
def test_an_answers_audio_tokens_are_read_from_its_usage(told, usage):
    """OpenAI counts the audio among a prompt's tokens, priced apart."""
    assert chatparse.usage(told) == usage


def test_a_whole_answers_logprobs_are_read_as_a_completions_are():
    entry = {
        "id": 5,
        "token": "Hi",
        "bytes": [72, 105],
        "logprob": -0.5,
        "top_logprobs": [
            {"id": 5, "token": "Hi", "bytes": [72, 105], "logprob": -0.5},
            {"id": 6, "token": "Yo", "bytes": [89, 111], "logprob": -1.5},
        ],
    }
    body = {
        "choices": [
            {
                "finish_reason": "length",
                "message": {"content": "Hi"},
                "logprobs": {"content": [entry]},
            }
        ],
        "usage": {},
    }
    (item,) = chatparse.completion(body, "http://up", 1).logprobs
    assert (item.token, item.logprob, [t for t, _, _ in item.top]) == ("Hi", -0.5, ["Hi"])


@pytest.mark.parametrize(
    "body",
    [{}, {"choices": []}, {"choices": [{"message": "x"}]}, []],
    ids=["empty", "no-choice", "message-not-object", "list"],
)
def test_a_whole_answer_without_a_message_is_the_upstreams_fault(body):
    with pytest.raises(UpstreamError):
        chatparse.completion(body, "http://up", None)


# -- streams --------------------------------------------------------------------------------


def events(*bodies) -> list:
    return [f"data: {json.dumps(body)}\n\n" for body in bodies] + ["data: [DONE]\n\n"]


def delta(**fields) -> dict:
    return {
        "choices": [{"finish_reason": None, "index": 0, "delta": fields}],
        "object": "chatparse.completion.chunk",
    }


ROLE = delta(role="assistant", content=None)
PROGRESS = {**ROLE, "prompt_progress": {"total": 886, "cache": 0, "processed": 886}}
FINISH = {"choices": [{"finish_reason": "tool_calls", "index": 0, "delta": {}}]}
USAGE = {
    "choices": [],
    "usage": {
        "completion_tokens": 15,
        "prompt_tokens": 886,
        "prompt_tokens_details": {"cached_tokens": 880},
    },
}
CALL = [
    PROGRESS,
    ROLE,
    delta(reasoning_content="Let me see."),
    delta(
        tool_calls=[
            {
                "index": 0,
                "id": "j4S",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{"},
            }
        ]
    ),
    delta(tool_calls=[{"index": 0, "function": {"arguments": '"city":"P'}}]),
    delta(tool_calls=[{"index": 0, "function": {"arguments": 'aris"}'}}]),
    delta(
        tool_calls=[
            {
                "index": 1,
                "id": "k5T",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            }
        ]
    ),
    FINISH,
    USAGE,
]


def read(texts: list, top=None) -> list:
    raw = "".join(texts).encode()
    return list(chatparse.stream_chunks(line_batches([raw]), "http://up", top))


def test_a_streamed_call_comes_in_pieces_with_the_prompt_count_first():
    count, *chunks = read(events(*CALL))
    assert count == Chunk(prompt_count=886)  # at once, alone: the first byte need not wait
    assert chunks[0].reasoning == "Let me see."
    assert [c.prompt_count for c in chunks] == [None] * len(chunks)
    pieces = [piece for chunk in chunks for piece in chunk.tool_calls]
    assert pieces[0] == ToolCallPiece(0, "{", "j4S", "get_weather")
    assert assembled(pieces) == (
        ToolCall("j4S", "get_weather", '{"city":"Paris"}'),
        ToolCall("k5T", "get_time", "{}"),
    )
    final = chunks[-1]
    assert (final.finish_reason, final.usage) == ("tool_calls", Usage(886, 15, 880))


@pytest.mark.parametrize("size", [1, 2, 7, 50])
def test_a_stream_reads_the_same_however_the_network_cuts_it(size):
    raw = "".join(events(*CALL)).encode()
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
    chunks = list(chatparse.stream_chunks(line_batches(pieces), "http://up", None))
    assert assembled([p for c in chunks for p in c.tool_calls]) == (
        ToolCall("j4S", "get_weather", '{"city":"Paris"}'),
        ToolCall("k5T", "get_time", "{}"),
    )
    assert "".join(c.reasoning for c in chunks) == "Let me see."


def test_events_of_one_read_but_the_last_are_followed():
    chunks = read(
        events(
            delta(content="a"),
            delta(content="b"),
            {"choices": [{"finish_reason": "stop", "delta": {}}]},
            USAGE,
        )
    )
    assert [(c.text, c.followed) for c in chunks] == [("a", True), ("b", True), ("", False)]


def test_a_stream_without_usage_still_ends_once():
    chunks = read(
        events(delta(content="x"), {"choices": [{"finish_reason": "length", "delta": {}}]})
    )
    assert [c.finish_reason for c in chunks] == [None, "length"]


def test_an_error_event_is_raised():
    with pytest.raises(UpstreamError, match="boom"):
        read(
            [
                f"data: {json.dumps(delta(content='x'))}\n\n",
                'data: {"error": {"code": 500, "message": "boom", "type": "server_error"}}\n\n',
            ]
        )


def test_a_stream_cut_before_its_finish_is_an_error():
    with pytest.raises(UpstreamError, match="before finishing"):
        read([f"data: {json.dumps(delta(content='x'))}\n\n"])


def test_a_context_overflow_carries_its_counts():
    error = stream_error(
        {
            "error": {
                "code": 400,
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 5000,
                "n_ctx": 4096,
                "message": "request (5000 tokens) exceeds the available context size "
                "(4096 tokens), try increasing it",
            }
        },
        "http://up",
    )
    assert isinstance(error, ContextLengthError)
    assert (error.prompt_tokens, error.limit, error.code) == (5000, 4096, "context_length_exceeded")
    assert "http://up" not in error.message


@pytest.mark.parametrize(
    "finish, text, expected",
    [("length", "中\ufffd", "中"), ("length", "\ufffd\ufffd", ""), ("stop", "a\ufffd", "a\ufffd")],
    ids=["cut-after-a-character", "cut-in-the-first", "not-cut"],
)
def test_a_character_the_limit_cut_is_left_out_of_a_whole_answer(finish, text, expected):
    body = {"choices": [{"finish_reason": finish, "message": {"content": text}}]}
    assert chatparse.completion(body, "http://up", None).text == expected


def test_timings_in_a_chunk_are_the_usage_so_far():
    timed = {**delta(content="x"), "timings": {"cache_n": 5, "prompt_n": 3, "predicted_n": 2}}
    chunks = read(
        events(
            timed, delta(content="y"), {"choices": [{"finish_reason": "stop", "delta": {}}]}, USAGE
        )
    )
    assert [c.usage for c in chunks[:2]] == [Usage(8, 2, 5), None]


def test_sounds_go_as_input_audio_parts_in_their_place_beside_images():
    cat = Image("messages[0].content[2].image_url.url", 4, "image/png", "AAAA", order=1)
    purr = Sound("messages[0].content[1].input_audio.data", 4, "mp3", "SUQz")
    request = GenerationRequest(messages=(Message("user", "hear\nsee", images=(cat,),
                                                  sounds=(purr,)),))  # fmt: skip
    (user,) = chatpayload.chat_payload(request, stream=False)["messages"]
    assert user["content"] == [
        {"type": "text", "text": "hear"},
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "\nsee"},
    ]


def test_images_go_as_content_parts_in_their_place():
    cat = Image("messages[0].content[1].image_url.url", 7, "image/png", "AAAA")
    request = GenerationRequest(
        messages=(Message("user", "what is\nthis?", images=(cat,)), Message("assistant", "a cat"))
    )
    (user, assistant) = chatpayload.chat_payload(request, stream=False)["messages"]
    assert user["content"] == [
        {"type": "text", "text": "what is"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "\nthis?"},
    ]
    assert assistant["content"] == "a cat"
