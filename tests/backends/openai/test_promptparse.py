"""A raw prompt's answer as OpenAI-compatible servers send it, whole and streamed: OpenAI's
own shape (vLLM's, LiteLLM's: usage in an event of its own, logprobs as maps) and
llama-server's (usage with the finish, logprobs as the chat route writes them)."""

from __future__ import annotations

import json

import pytest

from proxy.backends.openai import promptparse
from proxy.core.answers import Chunk, Completion, TokenLogprob, Usage
from proxy.core.errors import InvalidRequestError, UpstreamError
from tests.fakes.servercpp_wire import line_batches

UP = "the server of model 'big'"
USAGE = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
LEGACY = {  # OpenAI's logprobs for this route
    "tokens": [" a", " b"],
    "token_logprobs": [-0.5, -1.0],
    "top_logprobs": [{" a": -0.5, " c": -2.0}, {" b": -1.0}],
    "text_offset": [0, 2],
}
CONTENT = {  # llama-server's, the chat route's shape
    "content": [
        {"token": " a", "logprob": -0.5, "bytes": [32, 97], "top_logprobs": []},
        {"token": " b", "logprob": -1.0, "bytes": [32, 98], "top_logprobs": []},
    ]
}


def choice(text: str, finish=None, logprobs=None) -> dict:
    return {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}


@pytest.mark.parametrize(
    ("body", "top", "expected"),
    [
        (
            {"choices": [choice(" a b", "stop")], "usage": USAGE},
            None,
            Completion(" a b", "stop", Usage(4, 2)),
        ),
        (  # a character the limit cut is left out
            {"choices": [choice(" a\ufffd", "length")], "usage": USAGE},
            None,
            Completion(" a", "length", Usage(4, 2)),
        ),
        (  # cached tokens, as llama-server and OpenAI count them
            {
                "choices": [choice("x", "stop")],
                "usage": {**USAGE, "prompt_tokens_details": {"cached_tokens": 3}},
            },
            None,
            Completion("x", "stop", Usage(4, 2, 3)),
        ),
        (  # a reason the core does not know is a stop; no usage is none counted
            {"choices": [choice("x", "content_filter")]},
            None,
            Completion("x", "stop", Usage()),
        ),
        (
            {"choices": [choice(" a b", "stop", LEGACY)], "usage": USAGE},
            1,
            Completion(
                " a b",
                "stop",
                Usage(4, 2),
                logprobs=(
                    TokenLogprob(" a", -0.5, None, ((" a", -0.5, None),)),
                    TokenLogprob(" b", -1.0, None, ((" b", -1.0, None),)),
                ),
            ),
        ),
        (
            {"choices": [choice(" a b", "stop", CONTENT)], "usage": USAGE},
            0,
            Completion(
                " a b",
                "stop",
                Usage(4, 2),
                logprobs=(
                    TokenLogprob(" a", -0.5, (32, 97), ()),
                    TokenLogprob(" b", -1.0, (32, 98), ()),
                ),
            ),
        ),
        (  # probabilities nobody asked for are not read
            {"choices": [choice(" a b", "stop", LEGACY)], "usage": USAGE},
            None,
            Completion(" a b", "stop", Usage(4, 2)),
        ),
    ],
)
def test_a_whole_answer(body, top, expected):
    assert promptparse.completion(body, UP, top) == expected


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": ["x"]}, [], "x"])
def test_an_answer_without_a_choice_is_the_servers_fault(body):
    with pytest.raises(UpstreamError, match="answered the prompt without a choice"):
        promptparse.completion(body, UP, None)


@pytest.mark.parametrize(
    ("value", "top", "expected"),
    [
        (None, 2, ()),
        ({"tokens": [" a"]}, 2, ()),  # no probabilities beside them
        (  # a token without its probability, or a zero one (null), is as unlikely as can be
            {"tokens": [" a", " b"], "token_logprobs": [None], "top_logprobs": None},
            2,
            (TokenLogprob(" a", -9999.0), TokenLogprob(" b", -9999.0)),
        ),
        (  # alternatives cut to those asked for
            {"tokens": [" a"], "token_logprobs": [-0.1], "top_logprobs": [{"x": -1, "y": -2}]},
            1,
            (TokenLogprob(" a", -0.1, None, (("x", -1.0, None),)),),
        ),
    ],
)
def test_legacy_logprobs(value, top, expected):
    assert promptparse.logprobs(value, top) == expected


def sse(*events) -> list:
    """A stream's reads, one event each."""
    return [
        (b"data: [DONE]\n\n" if event == "[DONE]" else f"data: {json.dumps(event)}\n\n".encode())
        for event in events
    ]


def chunks(reads: list, top=None) -> list:
    return list(promptparse.stream_chunks(line_batches(reads), UP, top))


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(  # OpenAI's: the finish, then the usage alone
            [
                {"choices": [choice("Hel")]},
                {"choices": [choice("lo")]},
                {"choices": [choice("", "stop")]},
                {"choices": [], "usage": USAGE},
                "[DONE]",
            ],
            id="openai",
        ),
        pytest.param(  # llama-server's: the usage with the finish
            [
                {"choices": [choice("Hel")]},
                {"choices": [choice("lo")]},
                {"choices": [choice("", "stop")], "usage": USAGE, "timings": {}},
                "[DONE]",
            ],
            id="llama-server",
        ),
        pytest.param(  # the last text with the finish
            [
                {"choices": [choice("Hel")]},
                {"choices": [choice("lo", "stop")]},
                {"choices": [], "usage": USAGE},
                "[DONE]",
            ],
            id="text-with-finish",
        ),
    ],
)
def test_a_stream_ends_with_one_final_chunk_whichever_way_the_usage_comes(events):
    read = chunks(sse(*events))
    assert "".join(chunk.text for chunk in read) == "Hello"
    assert [chunk.finish_reason for chunk in read] == [None, None, "stop"]
    assert read[-1].usage == Usage(4, 2)


def test_a_stream_without_usage_ends_at_its_done():
    read = chunks(sse({"choices": [choice("a")]}, {"choices": [choice("", "length")]}, "[DONE]"))
    assert read[-1] == Chunk(finish_reason="length", usage=Usage())


def test_a_stream_reads_the_probabilities_asked_for():
    read = chunks(sse({"choices": [choice(" a b", "stop", LEGACY)], "usage": USAGE}), top=0)
    assert [token.token for token in read[0].logprobs] == [" a", " b"]
    assert read[0].logprobs[0].top == ()


def test_events_read_together_say_so():
    together = b"".join(sse({"choices": [choice("a")]}, {"choices": [choice("b")]}))
    read = chunks([together, *sse({"choices": [choice("", "stop")], "usage": USAGE})])
    assert [(chunk.text, chunk.followed) for chunk in read[:2]] == [("a", True), ("b", False)]


@pytest.mark.parametrize(
    ("reads", "error", "words"),
    [
        (sse({"choices": [choice("a")]}), UpstreamError, "ended the completion stream"),
        (sse({"choices": [choice("a")]}, "[DONE]"), UpstreamError, "ended the completion stream"),
        (
            sse({"error": {"message": "bad", "type": "invalid_request_error"}}),
            InvalidRequestError,
            "refused the request: bad",
        ),
        ([b"data: [1]\n\n"], UpstreamError, "not a JSON object"),
        ([b"data: {nope\n\n"], UpstreamError, "not JSON"),
    ],
)
def test_a_broken_stream_is_named(reads, error, words):
    with pytest.raises(error, match=words):
        chunks(reads)
