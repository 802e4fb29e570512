"""Streamed OpenAI answers: chunk order, ids, usage, n, echo, and errors after the first byte."""

from __future__ import annotations

import pytest

from proxy.core.errors import UpstreamError, UpstreamTimeoutError, UpstreamUnavailableError
from tests.api.openai_calls import (
    CHAT_BODY,
    CHAT_ROUTES,
    COMPLETION_BODY,
    COMPLETION_ROUTES,
    ERROR_KEYS,
    assert_openai_error,
    chunks_of,
    post,
    stream,
)
from tests.fakes.backend import FakeBackend


@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_chat_stream(client, backend, path):
    response, events = stream(client, path, CHAT_BODY)
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    chunks = chunks_of(events)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["created"] for chunk in chunks}) == 1
    assert type(chunks[0]["created"]) is int
    assert {chunk["model"] for chunk in chunks} == {"fake-model"}
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": " world"},
        {},
    ]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, "stop"]
    assert all("usage" not in chunk for chunk in chunks)
    assert backend.finished_streams == 1


@pytest.mark.parametrize("path", COMPLETION_ROUTES)
def test_completion_stream(client, backend, path):
    response, events = stream(client, path, COMPLETION_BODY)
    assert response.mimetype == "text/event-stream"
    chunks = chunks_of(events)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["id"].startswith("cmpl-")
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert [chunk["choices"][0]["text"] for chunk in chunks] == ["Hello", " world", ""]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, "stop"]
    assert all("usage" not in chunk for chunk in chunks)
    assert backend.finished_streams == 1


@pytest.mark.parametrize(
    ("path", "body", "object"),
    [
        pytest.param("/v1/chat/completions", CHAT_BODY, "chat.completion.chunk", id="chat"),
        pytest.param("/v1/completions", COMPLETION_BODY, "text_completion", id="completions"),
    ],
)
def test_stream_usage_chunk_only_with_include_usage(client, path, body, object):
    _, events = stream(client, path, body, stream_options={"include_usage": True})
    chunks = chunks_of(events)
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert last["object"] == object
    assert last["id"] == chunks[0]["id"]
    assert all("usage" not in chunk for chunk in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_with_include_usage_false_has_no_usage(client):
    _, events = stream(
        client, "/v1/chat/completions", CHAT_BODY, stream_options={"include_usage": False}
    )
    assert all("usage" not in chunk for chunk in chunks_of(events))


def test_chat_stream_with_n_2(client):
    _, events = stream(
        client, "/v1/chat/completions", CHAT_BODY, n=2, stream_options={"include_usage": True}
    )
    chunks = chunks_of(events)
    choices = [chunk["choices"][0] for chunk in chunks[:-1]]
    for index in (0, 1):
        mine = [choice for choice in choices if choice["index"] == index]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert "".join(choice["delta"].get("content", "") for choice in mine) == "Hello world"
        assert [choice["finish_reason"] for choice in mine if choice["finish_reason"]] == ["stop"]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def test_completion_stream_with_n_2(client):
    _, events = stream(client, "/v1/completions", COMPLETION_BODY, n=2)
    choices = [chunk["choices"][0] for chunk in chunks_of(events)]
    for index in (0, 1):
        mine = [choice for choice in choices if choice["index"] == index]
        assert "".join(choice["text"] for choice in mine) == "Hello world"
        assert [choice["finish_reason"] for choice in mine if choice["finish_reason"]] == ["stop"]


def test_completion_stream_echo_sends_the_prompt_first(client):
    _, events = stream(client, "/v1/completions", COMPLETION_BODY, echo=True)
    assert [chunk["choices"][0]["text"] for chunk in chunks_of(events)] == [
        "Once",
        "Hello",
        " world",
        "",
    ]


def test_stream_utf8_is_sent_unescaped(make_client):
    client = make_client(FakeBackend(("\u4f60\u597d",)))
    response, events = stream(client, "/v1/chat/completions", CHAT_BODY)
    assert "\u4f60\u597d".encode("utf-8") in response.data
    assert chunks_of(events)[1]["choices"][0]["delta"] == {"content": "\u4f60\u597d"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
        pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
    ],
)
def test_error_before_the_first_byte_is_an_http_error(make_client, path, body):
    fake = FakeBackend(error=UpstreamUnavailableError("llama-server is down", retry_after=7))
    response = post(make_client(fake), path, body, stream=True)
    error = assert_openai_error(response, 503, type="upstream_error", code="upstream_unavailable")
    assert error["message"] == "llama-server is down"
    assert response.headers["Retry-After"] == "7"


def test_error_before_the_first_byte_without_retry_after(make_client):
    fake = FakeBackend(error=UpstreamTimeoutError("llama-server did not answer"))
    response = post(make_client(fake), "/v1/chat/completions", CHAT_BODY, stream=True)
    assert_openai_error(response, 504, code="upstream_timeout")
    assert "Retry-After" not in response.headers


def test_echo_stream_error_before_the_first_byte_is_an_http_error(make_client):
    fake = FakeBackend(error=UpstreamUnavailableError("llama-server is down", retry_after=7))
    response = post(make_client(fake), "/v1/completions", COMPLETION_BODY, stream=True, echo=True)
    assert_openai_error(response, 503, code="upstream_unavailable")


@pytest.mark.parametrize(
    ("path", "body", "first_text"),
    [
        pytest.param(
            "/v1/chat/completions",
            CHAT_BODY,
            lambda chunk: chunk["choices"][0]["delta"].get("content"),
            id="chat",
        ),
        pytest.param(
            "/v1/completions",
            COMPLETION_BODY,
            lambda chunk: chunk["choices"][0]["text"],
            id="completions",
        ),
    ],
)
def test_error_after_the_first_byte_is_one_error_event_then_done(
    make_client, path, body, first_text
):
    fake = FakeBackend(("a", "b", "c"), error=UpstreamError("upstream broke off"), fail_after=1)
    response, events = stream(make_client(fake), path, body)
    chunks = chunks_of(events)
    errors = [chunk for chunk in chunks if "error" in chunk]
    assert errors == [
        {
            "error": {
                "message": "upstream broke off",
                "type": "upstream_error",
                "param": None,
                "code": "bad_gateway",
            }
        }
    ]
    assert chunks[-1] is errors[0]
    assert [first_text(chunk) for chunk in chunks[:-1] if first_text(chunk)] == ["a"]
    assert not any(chunk["choices"][0]["finish_reason"] for chunk in chunks[:-1])
    assert fake.closed_streams == 1


def test_unexpected_error_mid_stream_is_generic(make_client):
    fake = FakeBackend(("a", "b"), error=RuntimeError("secret /etc/passwd"), fail_after=1)
    response, events = stream(make_client(fake), "/v1/chat/completions", CHAT_BODY)
    error = chunks_of(events)[-1]["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == "internal_error"
    assert b"secret" not in response.data
    assert b"RuntimeError" not in response.data


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
        pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
    ],
)
def test_client_that_stops_reading_closes_the_backend_stream(make_client, path, body):
    fake = FakeBackend(("a", "b", "c", "d", "e"))
    response = make_client(fake).post(path, json={**body, "stream": True}, buffered=False)
    assert response.status_code == 200
    received = iter(response.response)
    first = next(received)
    second = next(received)
    assert first.startswith(b"data: ") and second.startswith(b"data: ")
    response.close()
    assert fake.closed_streams == 1
    assert fake.finished_streams == 0
