"""What the spans say, in OpenTelemetry's conventions: tables of the pure mapping."""

from __future__ import annotations

import json

import pytest

from proxy.core.errors import ContextLengthError, UpstreamTimeoutError
from proxy.core.types import GenerationRequest, Image, Message, Sampling, ToolCall
from proxy.traces import conventions


@pytest.mark.parametrize(
    "url, told",
    [
        ("http://10.0.0.5:8080", {"server.address": "10.0.0.5", "server.port": 8080}),
        ("https://api.example.com/v1", {"server.address": "api.example.com", "server.port": 443}),
        ("http://[::1]/", {"server.address": "::1", "server.port": 80}),
        ("chatglm3-6b", {}),  # a model the proxy loads itself
    ],
)
def test_an_upstreams_url_is_its_server_address_and_port(url, told):
    assert conventions.server(url) == told


@pytest.mark.parametrize(
    "request_, backend, told",
    [
        (GenerationRequest(messages=({"role": "user", "content": "hi"},), max_tokens=5),
         "servercpp",
         {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "llama.cpp",
          "gen_ai.request.model": "m", "gen_ai.request.max_tokens": 5}),
        (GenerationRequest(prompt="once", sampling=Sampling(temperature=0.2, top_p=0.9)),
         "openai",
         {"gen_ai.operation.name": "text_completion", "gen_ai.provider.name": "openai",
          "gen_ai.request.model": "m", "gen_ai.request.temperature": 0.2,
          "gen_ai.request.top_p": 0.9}),
    ],
    ids=["chat-on-llama.cpp", "completion-on-openai"],
)  # fmt: skip
def test_an_attempt_says_what_was_asked_of_which_model(request_, backend, told):
    assert conventions.attempt_attributes(request_, backend, "m", "") == told


@pytest.mark.parametrize(
    "exc, told",
    [
        (UpstreamTimeoutError("the engine took too long"),
         ("upstream_timeout", "the engine took too long")),
        (ContextLengthError(9000, 2048),
         ("context_length_exceeded", ContextLengthError(9000, 2048).message)),
        (RuntimeError("at /srv/internal:8080"), ("RuntimeError", "RuntimeError")),
    ],
    ids=["timeout", "context", "not-the-proxys"],
)  # fmt: skip
def test_a_failure_is_its_code_and_the_message_a_client_reads(exc, told):
    assert conventions.failure(exc) == told


def test_what_was_said_is_the_messages_text_and_calls_never_their_media():
    request = GenerationRequest(messages=(
        Message("user", "what is this?", images=(Image("messages[0].content[1]"),)),
        Message("assistant", "", tool_calls=(ToolCall("c1", "look", '{"at": 1}'),)),
        Message("tool", "a cat", tool_call_id="c1"),
    ))  # fmt: skip
    assert json.loads(conventions.said(request)["gen_ai.input.messages"]) == [
        {"role": "user", "content": "what is this?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "c1", "name": "look", "arguments": '{"at": 1}'}]},
        {"role": "tool", "content": "a cat", "tool_call_id": "c1"},
    ]  # fmt: skip
    prompted = conventions.said(GenerationRequest(prompt="once upon"))
    assert json.loads(prompted["gen_ai.input.messages"]) == [
        {"role": "user", "content": "once upon"}
    ]


@pytest.mark.parametrize(
    "status, asked, answered, key, told",
    [
        (200, "cloud", "tiny", None, {"http.response.status_code": 200,
         "gen_ai.request.model": "cloud", "gen_ai.response.model": "tiny"}),
        (503, "cloud", "", "alice", {"http.response.status_code": 503,
         "gen_ai.request.model": "cloud", "oai_proxy.key": "alice"}),
    ],
    ids=["a-fallback-answered", "none-answered"],
)  # fmt: skip
def test_a_requests_span_tells_the_model_asked_and_the_one_that_answered(
    status, asked, answered, key, told
):
    assert conventions.ended(status, asked, answered, key) == told
