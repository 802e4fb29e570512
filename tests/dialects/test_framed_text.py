"""A token's text goes out in bytes its renderer frames itself, for speed: for any text,
those bytes are exactly what the dialect's encoder writes for the event they hold, and the
client reads the text back as it was; a wait between two texts (a hosted tool running) is
a comment, or nothing where the framing has none, and the text goes on as before."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.events import WAITING, TextDelta
from proxy.core.sse import COMMENT, encode_event, encode_line, encode_named
from proxy.core.types import GenerationRequest
from proxy.dialects import anthropic, responses
from proxy.dialects.dialect import Ask
from proxy.dialects.ollama import chat as ollama_chat
from proxy.dialects.ollama import generate as ollama_generate
from proxy.dialects.ollama.stream import OllamaStream
from proxy.dialects.openai import chat as openai_chat
from proxy.dialects.openai.request import Delivery

from .payloads import decoded

CHAT = GenerationRequest(prompt="")


def openai_stream():
    return openai_chat.stream(
        Ask((CHAT,), 1, True, Delivery(False, False)), "chatcmpl-1", 'a "model" \u00e9'
    )


def anthropic_stream():
    return anthropic.MessagesStream(
        anthropic.parse(
            {
                "model": "m",
                "max_tokens": 8,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
        ),
        "msg_1",
        "m",
    )


def responses_stream():
    return responses.ResponsesStream(
        responses.parse({"model": "m", "input": "hi", "stream": True}), "resp_1", "m"
    )


def ollama_chat_stream():
    parsed = ollama_chat.parse(
        {"model": "q:latest", "messages": [{"role": "user", "content": "hi"}]}
    )
    return OllamaStream(parsed, "q:latest", "chat")


def ollama_generate_stream():
    return OllamaStream(ollama_generate.parse({"model": "q", "prompt": "hi"}), "q", "generate")


# renderer, its encoder, where the text is in the decoded event
STREAMS = [
    (openai_stream, encode_event, lambda body: body["choices"][0]["delta"]["content"]),
    (anthropic_stream, encode_named, lambda body: body["delta"]["text"]),
    (responses_stream, encode_named, lambda body: body["delta"]),
    (ollama_chat_stream, encode_line, lambda body: body["message"]["content"]),
    (ollama_generate_stream, encode_line, lambda body: body["response"]),
]


@given(st.lists(st.text(min_size=1), min_size=1, max_size=4))
def test_framed_text_is_the_encoders_bytes_and_reads_back(texts):
    for make, encode, text_of in STREAMS:
        stream = make()
        framed = [
            payload
            for write in stream.render(iter([[TextDelta(t)] for t in texts]))
            for payload in write
            if isinstance(payload, bytes)
        ]
        assert len(framed) == len(texts), make.__name__
        for payload, text in zip(framed, texts, strict=True):
            body = decoded(payload)
            assert encode(body) == payload, make.__name__
            assert text_of(body) == text, make.__name__


@pytest.mark.parametrize(
    "make, encode, text_of", STREAMS, ids=[make.__name__ for make, _, _ in STREAMS]
)
def test_a_wait_between_two_texts_keeps_company_and_changes_no_text(make, encode, text_of):
    stream = make()
    writes = list(stream.render(iter([[TextDelta("a")], [WAITING], [TextDelta("b")]])))
    texts = [text_of(decoded(p)) for write in writes for p in write if isinstance(p, bytes)]
    assert texts == ["a", "b"]
    keepalive = getattr(stream, "keepalive", COMMENT)  # Anthropic's is a ping event
    waits = [write for write in writes if write == [keepalive]]
    assert waits == ([] if encode is encode_line else [[keepalive]])  # NDJSON has no comment
