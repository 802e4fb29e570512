"""Chats and raw prompts as an OpenAI-compatible upstream reads them, and what only a
server.cpp reads refused by the name the client gave it."""

from __future__ import annotations

import pytest

from proxy.backends.openai.payload import chat_body, passed_body, prompt_body, refusal, unsent
from proxy.core.types import (
    GenerationRequest,
    Message,
    ResponseFormat,
    Sampling,
    ToolChoice,
    Verbatim,
)

CHAT = (Message("user", "hi"),)
TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (GenerationRequest(prompt="once upon"), None),
        (
            GenerationRequest(prompt="once upon", response_format=ResponseFormat("json_object")),
            "response_format",
        ),
        (GenerationRequest(prompt="once upon", sampling=Sampling(mirostat=2)), "mirostat"),
        (GenerationRequest(prompt="once upon", n_keep=4), "n_keep"),
        (GenerationRequest(messages=CHAT, grammar="root ::= x"), "grammar"),
        (GenerationRequest(messages=CHAT, slot=1), "id_slot"),
        (GenerationRequest(messages=CHAT, cache_prompt=False), "cache_prompt"),
        (GenerationRequest(messages=CHAT, n_keep=4), "n_keep"),
        (GenerationRequest(messages=CHAT, suffix="}"), "suffix"),
        (GenerationRequest(messages=CHAT, tokenize=True), "tokenize"),
        (GenerationRequest(messages=CHAT, unread={"n_indent": 4}), None),  # the engine's to read
        (GenerationRequest(messages=CHAT, sampling=Sampling(mirostat=2)), "mirostat"),
        (GenerationRequest(messages=CHAT, sampling=Sampling(repeat_penalty=1.1)), "repeat_penalty"),
        (GenerationRequest(messages=CHAT, sampling=Sampling(top_k=40, min_p=0.1)), None),
        (GenerationRequest(messages=CHAT), None),
    ],
)
def test_what_only_a_servercpp_reads_is_refused_by_name(request_, param):
    error = refusal(request_, "the server of model 'big'")
    if param is None:
        assert error is None
    else:
        assert error.param == param and error.status == 400
        assert error.message.startswith(f"{param} cannot be served: the server of model 'big'")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (GenerationRequest(messages=CHAT), {}),
        (
            GenerationRequest(messages=CHAT, max_tokens=8, stop=("\n",)),
            {"max_tokens": 8, "stop": ["\n"]},
        ),
        (
            GenerationRequest(messages=CHAT, sampling=Sampling(temperature=0, seed=3, top_k=1)),
            {"temperature": 0, "seed": 3, "top_k": 1},
        ),
        (
            GenerationRequest(messages=CHAT, sampling=Sampling(logit_bias=((5, 2.0), (7, False)))),
            {"logit_bias": {"5": 2.0, "7": -100}},
        ),
        (GenerationRequest(messages=CHAT, logprobs=2), {"logprobs": True, "top_logprobs": 2}),
        (
            GenerationRequest(messages=CHAT, response_format=ResponseFormat("json_object")),
            {"response_format": {"type": "json_object"}},
        ),
        (
            GenerationRequest(
                messages=CHAT, response_format=ResponseFormat("json_schema", {"type": "array"})
            ),
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": {"type": "array"}},
                }
            },
        ),
        (
            GenerationRequest(messages=CHAT, tools=(TOOL,), parallel_tool_calls=False),
            {"tools": [TOOL], "tool_choice": "auto", "parallel_tool_calls": False},
        ),
        (
            GenerationRequest(
                messages=CHAT, tools=(TOOL,), tool_choice=ToolChoice("function", "weather")
            ),
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "weather"}}},
        ),
        (
            GenerationRequest(messages=CHAT, template_kwargs={"enable_thinking": False}),
            {"chat_template_kwargs": {"enable_thinking": False}},
        ),
        (
            GenerationRequest(messages=CHAT, template_kwargs={"reasoning_effort": "low"}),
            {"reasoning_effort": "low"},
        ),
        (
            GenerationRequest(
                messages=CHAT, template_kwargs={"reasoning_effort": "high", "enable_thinking": True}
            ),
            {"reasoning_effort": "high", "chat_template_kwargs": {"enable_thinking": True}},
        ),
    ],
)
def test_a_chat_as_openais_api_writes_it(request_, expected):
    body = chat_body(request_, "Qwen/Qwen3-32B", stream=False)
    assert body == {
        "model": "Qwen/Qwen3-32B",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        **expected,
    }


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (GenerationRequest(prompt="once"), {}),
        (
            GenerationRequest(prompt="once", max_tokens=8, stop=("\n",)),
            {"max_tokens": 8, "stop": ["\n"]},
        ),
        (
            GenerationRequest(prompt="once", sampling=Sampling(temperature=0, min_p=0.1)),
            {"temperature": 0, "min_p": 0.1},
        ),
        (
            GenerationRequest(prompt="once", sampling=Sampling(logit_bias=((7, False),))),
            {"logit_bias": {"7": -100}},
        ),
        # the legacy completions' logprobs: how many alternatives, 0 the chosen token's alone
        (GenerationRequest(prompt="once", logprobs=0), {"logprobs": 0}),
        (GenerationRequest(prompt="once", logprobs=3), {"logprobs": 3}),
        # a raw prompt renders no template: a model's default variables have nothing to reach
        (GenerationRequest(prompt="once", template_kwargs={"enable_thinking": False}), {}),
    ],
)
def test_a_raw_prompt_as_openais_legacy_completions_write_it(request_, expected):
    body = prompt_body(request_, "Qwen/Qwen3-32B", stream=False)
    assert body == {"model": "Qwen/Qwen3-32B", "prompt": "once", "stream": False, **expected}


@pytest.mark.parametrize(
    ("write", "request_"),
    [(chat_body, GenerationRequest(messages=CHAT)), (prompt_body, GenerationRequest(prompt="x"))],
)
def test_a_stream_asks_for_its_usage_on_either_route(write, request_):
    body = write(request_, "m", stream=True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("request_", "leave_out", "param"),
    [
        (GenerationRequest(messages=CHAT, cache_prompt=True), ("cache_prompt",), None),
        (GenerationRequest(messages=CHAT, sampling=Sampling(mirostat=2)), (), "mirostat"),
        (GenerationRequest(messages=CHAT, sampling=Sampling(mirostat=2)), ("mirostat",), None),
        (  # a raw prompt's response_format is never left out
            GenerationRequest(prompt="once upon", response_format=ResponseFormat("json_object")),
            ("response_format",),
            "response_format",
        ),
    ],
)
def test_what_the_operator_strips_goes_unsent_rather_than_refused(request_, leave_out, param):
    error = refusal(request_, "the server of model 'big'", leave_out)
    assert (error.param if error else None) == param
    assert "cache_prompt" not in chat_body(request_, "m", stream=False)


def test_what_openais_api_has_no_place_for_is_named_as_the_client_named_it():
    request_ = GenerationRequest(
        messages=CHAT, slot=0, unread={"n_indent": 4}, sampling=Sampling(repeat_penalty=1.1)
    )
    assert [param for param, _ in unsent(request_)] == ["id_slot", "repeat_penalty"]


def test_the_fields_the_proxy_does_not_read_go_as_they_came():
    unread = {"repetition_penalty": 1.1, "user": "u1", "fresh_field": {"a": [1]}}
    request_ = GenerationRequest(messages=CHAT, unread=unread)
    assert chat_body(request_, "m", stream=False).items() >= unread.items()
    assert prompt_body(GenerationRequest(prompt="x", unread=unread), "m", stream=False).items() >= (
        unread.items()
    )


OWN_BODY = {
    "model": "asked",
    "messages": [{"role": "developer", "content": [{"type": "text", "text": "hi"}]}],
    "n": 2,
    "priority": 5,
    "enable_thinking": False,
    "max_completion_tokens": 9,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": True}},
    "stream_options": {"include_usage": False, "continuous_usage_stats": True},
    "store": True,
    "tools": [TOOL],
}

# what of it goes on: all but the proxy's own fields
SENT = {k: v for k, v in OWN_BODY.items() if k not in ("n", "priority", "enable_thinking")}


def _own(**changes) -> GenerationRequest:
    """A request as the chat dialect reads OWN_BODY, with ``changes``."""
    messages, tools = (Message("developer", "hi"),), (TOOL,)
    own = Verbatim("chat", OWN_BODY, messages=messages, tools=tools)
    fields = {"messages": messages, "tools": tools, "max_tokens": 9, "verbatim": own}
    return GenerationRequest(**{**fields, **changes})


@pytest.mark.parametrize(
    ("request_", "stream", "expected"),
    [
        (  # every field as it came, but the proxy's own; model and stream set
            _own(template_kwargs={"enable_thinking": False}),
            False,
            {
                **SENT,
                "model": "up",
                "stream": False,
                "chat_template_kwargs": {"enable_thinking": False},
            },
        ),
        (  # a stream asks for its usage, beside the client's own stream options
            _own(),
            True,
            {
                **SENT,
                "model": "up",
                "stream": True,
                "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            },
        ),
    ],
)
def test_a_chat_clients_own_body_goes_as_it_came(request_, stream, expected):
    body = passed_body(OWN_BODY, request_, "up", stream=stream)
    assert body == {k: v for k, v in expected.items() if stream or k != "stream_options"}


def test_what_the_proxy_changed_of_an_own_body_is_written_anew_and_the_defaults_fill_in():
    later = (Message("developer", "hi"), Message("assistant", "ok"), Message("user", "and?"))
    run = {"type": "function", "function": {"name": "docs.read", "parameters": {}}}
    request_ = _own(messages=later, tools=(run,), sampling=Sampling(temperature=0.2), stop=("x",))
    body = passed_body(OWN_BODY, request_, "up", stream=False)
    assert [m["content"] for m in body["messages"]] == ["hi", "ok", "and?"]
    assert body["tools"] == [run] and body["tool_choice"] == "auto"
    assert body["temperature"] == 0.2 and body["stop"] == ["x"]  # the model's defaults
    assert "max_tokens" not in body and body["max_completion_tokens"] == 9
    assert body["messages"] is not OWN_BODY["messages"] and OWN_BODY["n"] == 2  # untouched
