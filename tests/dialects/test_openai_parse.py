"""OpenAI request bodies (chat completions and completions) become GenerationRequest values;
bad fields are named."""

from __future__ import annotations

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.core.types import (
    GenerationRequest,
    Message,
    ResponseFormat,
    Sampling,
    ToolCall,
    ToolChoice,
)
from proxy.dialects.dialect import Limits
from proxy.dialects.openai.chat import parse as parse_chat
from proxy.dialects.openai.completions import parse as parse_completion

MAX_CHOICES = 4
LIMITS = Limits(max_choices=MAX_CHOICES)
USER_HI = [{"role": "user", "content": "hi"}]


def chat(**fields):
    """Parse a chat body: one user message unless ``messages`` is given."""
    return parse_chat({"messages": USER_HI, **fields}, LIMITS)


def completion(**fields):
    """Parse a completions body: prompt "Once" unless ``prompt`` is given."""
    return parse_completion({"prompt": "Once", **fields}, LIMITS)


def only_request(choices) -> GenerationRequest:
    (request,) = choices.requests
    return request


# -- chat: happy paths --------------------------------------------------------------------


def test_minimal_chat():
    choices = chat()
    assert only_request(choices) == GenerationRequest(messages=(Message("user", "hi"),))
    assert only_request(choices).is_chat
    assert (choices.n, choices.stream, choices.notes.include_usage, choices.notes.echo) == (
        1,
        False,
        False,
        False,
    )


def test_messages_keep_order_role_and_optional_fields():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "name": "ann"},
        {"role": "assistant", "content": "hello"},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {"role": "developer", "content": "dev"},
    ]
    assert only_request(chat(messages=messages)).messages == (
        Message("system", "be brief"),
        Message("user", "hi", name="ann"),
        Message("assistant", "hello"),
        Message("tool", "42", tool_call_id="call_1"),
        Message("developer", "dev"),
    )


def test_text_content_parts_are_joined_with_newlines():
    content = [{"type": "text", "text": "first"}, {"type": "input_text", "text": "second"}]
    request = only_request(chat(messages=[{"role": "user", "content": content}]))
    assert request.messages == (Message("user", "first\nsecond"),)


def test_assistant_with_tool_calls_may_have_null_content():
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    ]
    messages = USER_HI + [{"role": "assistant", "content": None, "tool_calls": calls}]
    request = only_request(chat(messages=messages))
    assert request.messages[1] == Message(
        "assistant", "", tool_calls=(ToolCall("call_1", "add", '{"a": 1}'),)
    )


@pytest.mark.parametrize(
    "call, expected",
    [
        (
            {
                "id": "c",
                "type": "function",
                "function": {"name": "f", "arguments": {"a": [1, "é"]}},
            },
            ToolCall("c", "f", '{"a":[1,"é"]}'),
        ),
        ({"function": {"name": "f"}}, ToolCall("call1x0", "f", "{}")),
    ],
    ids=["object-arguments", "no-id-no-arguments"],
)
def test_earlier_calls_are_read_into_calls(call, expected):
    messages = USER_HI + [
        {"role": "assistant", "content": "", "tool_calls": [call], "reasoning_content": "I add."}
    ]
    message = only_request(chat(messages=messages)).messages[1]
    assert message.tool_calls == (expected,) and message.reasoning == "I add."


@pytest.mark.parametrize(
    "call, param",
    [
        ({"type": "function"}, "messages[1].tool_calls[0].function"),
        ({"function": {"arguments": "{}"}}, "messages[1].tool_calls[0].function.name"),
        (
            {"function": {"name": "f", "arguments": 3}},
            "messages[1].tool_calls[0].function.arguments",
        ),
        ({"type": "custom", "function": {"name": "f"}}, "messages[1].tool_calls[0].type"),
        ("not a call", "messages[1].tool_calls[0]"),
    ],
    ids=["no-function", "no-name", "number-arguments", "other-type", "string"],
)
def test_a_malformed_earlier_call_is_a_400_naming_it(call, param):
    messages = USER_HI + [{"role": "assistant", "content": "", "tool_calls": [call]}]
    with pytest.raises(InvalidRequestError) as info:
        chat(messages=messages)
    assert info.value.param == param


@pytest.mark.parametrize(
    "fields, variables",
    [
        ({}, {}),
        ({"reasoning_effort": "high"}, {"reasoning_effort": "high"}),
        ({"reasoning_effort": "none"}, {"enable_thinking": False}),
        ({"enable_thinking": True}, {"enable_thinking": True}),
        (
            {"chat_template_kwargs": {"enable_thinking": False, "x": [1]}},
            {"enable_thinking": False, "x": [1]},
        ),
        (
            {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "low"},
            {"enable_thinking": True, "reasoning_effort": "low"},
        ),
    ],
    ids=["none", "effort", "effort-none", "enable-thinking", "kwargs", "both"],
)
def test_thinking_controls_become_template_variables(fields, variables):
    assert only_request(chat(messages=USER_HI, **fields)).template_kwargs == variables


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"chat_template_kwargs": "x"}, "chat_template_kwargs"),
        ({"chat_template_kwargs": {"enable_thinking": "yes"}}, "chat_template_kwargs"),
        ({"reasoning_effort": "max"}, "reasoning_effort"),
        ({"enable_thinking": 1}, "enable_thinking"),
    ],
    ids=["kwargs-not-object", "thinking-not-bool", "unknown-effort", "thinking-number"],
)
def test_bad_thinking_controls_are_a_400_naming_the_field(fields, param):
    with pytest.raises(InvalidRequestError) as info:
        chat(messages=USER_HI, **fields)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"max_tokens": 16}, 16, id="max_tokens"),
        pytest.param({"max_completion_tokens": 32}, 32, id="max_completion_tokens"),
        pytest.param({"max_tokens": 16, "max_completion_tokens": 32}, 32, id="completion-wins"),
        pytest.param({"max_tokens": 16, "max_completion_tokens": None}, 16, id="null-falls-back"),
        pytest.param({"max_tokens": 8.0}, 8, id="integral-float"),
        pytest.param({"max_tokens": None}, None, id="null"),
        pytest.param({"n_predict": 24}, 24, id="llama-servers-n_predict"),
        pytest.param({"n_predict": None, "max_tokens": 16}, 16, id="null-n_predict"),
    ],
)
def test_max_tokens(fields, expected):
    value = only_request(chat(**fields)).max_tokens
    assert value == expected
    assert value is None or type(value) is int


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        pytest.param(None, (), id="null"),
        pytest.param("###", ("###",), id="string"),
        pytest.param(["a", "b"], ("a", "b"), id="list"),
        pytest.param([], (), id="empty-list"),
        pytest.param("", (), id="empty-string"),
        pytest.param(["", "x"], ("x",), id="empty-words-dropped"),
        pytest.param(["\n\n"], ("\n\n",), id="whitespace-kept"),
    ],
)
def test_stop(stop, expected):
    assert only_request(chat(stop=stop)).stop == expected


def test_logit_bias_becomes_id_bias_pairs_and_false_bans():
    request = only_request(chat(logit_bias={"15": 2, "7": -100, "42": False, "0": 0.5}))
    bias = request.sampling.logit_bias
    assert bias == ((15, 2.0), (7, -100.0), (42, False), (0, 0.5))
    assert bias[2][1] is False
    assert [type(value) for _, value in bias] == [float, float, bool, float]


def test_sampling_fields():
    sampling = only_request(
        chat(
            temperature=0.7,
            top_p=0.9,
            top_k=40,
            min_p=0.05,
            presence_penalty=-1.5,
            frequency_penalty=2,
            repeat_penalty=1.1,
            seed=1234,
            mirostat=2,
            mirostat_tau=5,
            mirostat_eta=0.1,
        )
    ).sampling
    assert sampling == Sampling(
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        presence_penalty=-1.5,
        frequency_penalty=2.0,
        repeat_penalty=1.1,
        seed=1234,
        mirostat=2,
        mirostat_tau=5.0,
        mirostat_eta=0.1,
    )


def test_unset_sampling_fields_stay_none():
    assert only_request(chat(temperature=None)).sampling == Sampling()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("temperature", 0, id="temperature-0"),
        pytest.param("temperature", 2, id="temperature-2"),
        pytest.param("top_p", 0, id="top_p-0"),
        pytest.param("top_p", 1, id="top_p-1"),
        pytest.param("seed", -1, id="seed-minus-1"),
        pytest.param("top_k", 0, id="top_k-0"),
    ],
)
def test_sampling_bounds_are_inclusive(name, value):
    assert getattr(only_request(chat(**{name: value})).sampling, name) == value


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param({"type": "text"}, None, id="text"),
        pytest.param({"type": "json_object"}, ResponseFormat("json_object"), id="json_object"),
        pytest.param(
            {
                "type": "json_schema",
                "json_schema": {"name": "point", "schema": {"type": "object", "required": ["x"]}},
            },
            ResponseFormat("json_schema", {"type": "object", "required": ["x"]}),
            id="json_schema",
        ),
    ],
)
def test_response_format(response_format, expected):
    assert only_request(chat(response_format=response_format)).response_format == expected


@pytest.mark.parametrize(
    ("fields", "n", "stream", "include_usage"),
    [
        pytest.param({"n": 3}, 3, False, False, id="n"),
        pytest.param({"n": None}, 1, False, False, id="n-null"),
        pytest.param({"n": MAX_CHOICES}, MAX_CHOICES, False, False, id="n-max"),
        pytest.param({"stream": True}, 1, True, False, id="stream"),
        pytest.param(
            {"stream": False, "stream_options": {"include_usage": True}},
            1,
            False,
            True,
            id="include-usage-kept",
        ),
        pytest.param(
            {"stream": True, "stream_options": {"include_usage": True}},
            1,
            True,
            True,
            id="stream-with-usage",
        ),
        pytest.param({"stream": True, "stream_options": {}}, 1, True, False, id="empty-options"),
        pytest.param({"stream": True, "stream_options": None}, 1, True, False, id="null-options"),
    ],
)
def test_choices(fields, n, stream, include_usage):
    choices = chat(**fields)
    assert (choices.n, choices.stream, choices.notes.include_usage) == (n, stream, include_usage)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, None, id="absent"),
        pytest.param({"logprobs": False}, None, id="false"),
        pytest.param({"logprobs": False, "top_logprobs": 5}, None, id="top-without-logprobs"),
        pytest.param({"logprobs": True}, 0, id="true"),
        pytest.param({"logprobs": True, "top_logprobs": 3}, 3, id="top-3"),
        pytest.param({"logprobs": True, "top_logprobs": 20}, 20, id="top-20"),
    ],
)
def test_chat_logprobs(fields, expected):
    assert only_request(chat(**fields)).logprobs == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {}, {"n_keep": None, "cache_prompt": None, "slot": None, "tokenize": False}, id="absent"
        ),
        pytest.param(
            {"n_keep": -1, "cache_prompt": True},
            {"n_keep": -1, "cache_prompt": True, "slot": None, "tokenize": False},
            id="n_keep-cache_prompt",
        ),
        pytest.param(
            {"n_keep": 32, "cache_prompt": False},
            {"n_keep": 32, "cache_prompt": False, "slot": None, "tokenize": False},
            id="n_keep-positive",
        ),
        pytest.param(
            {"slot_id": 2},
            {"n_keep": None, "cache_prompt": None, "slot": 2, "tokenize": False},
            id="slot_id",
        ),
        pytest.param(
            {"id_slot": 1},
            {"n_keep": None, "cache_prompt": None, "slot": 1, "tokenize": False},
            id="id_slot",
        ),
        pytest.param(
            {"id_slot": 1, "slot_id": 3},
            {"n_keep": None, "cache_prompt": None, "slot": 1, "tokenize": False},
            id="id_slot-wins",
        ),
        pytest.param(
            {"slot_id": -1},
            {"n_keep": None, "cache_prompt": None, "slot": -1, "tokenize": False},
            id="any-slot",
        ),
        pytest.param(
            {"tokenize": True},
            {"n_keep": None, "cache_prompt": None, "slot": None, "tokenize": True},
            id="tokenize",
        ),
    ],
)
def test_server_extras(fields, expected):
    request = only_request(chat(**fields))
    assert {name: getattr(request, name) for name in expected} == expected


def test_model_and_tools():
    tools = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
    request = only_request(chat(model="my-model", tools=tools))
    assert request.model == "my-model"
    assert request.tools == tuple(tools)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="absent"),
        pytest.param({"model": ""}, id="empty"),
        pytest.param({"model": None}, id="null"),
    ],
)
def test_no_model_is_none(fields):
    assert only_request(chat(**fields)).model is None


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, ToolChoice()),
        ("auto", ToolChoice()),
        ("required", ToolChoice("required")),
        ({"type": "function", "function": {"name": "add"}}, ToolChoice("function", "add")),
    ],
)
def test_tool_choice(choice, expected):
    tools = [{"type": "function", "function": {"name": "add"}}]
    body = chat(tools=tools, **({"tool_choice": choice} if choice else {}))
    assert only_request(body).tool_choice == expected
    assert only_request(body).parallel_tool_calls is None  # as the model's template allows
    assert only_request(chat(tools=tools, parallel_tool_calls=False)).parallel_tool_calls is False


def test_tool_choice_none_drops_tools():
    tools = [{"type": "function", "function": {"name": "add"}}]
    assert only_request(chat(tools=tools, tool_choice="none")).tools == ()


# -- completions: happy paths -------------------------------------------------------------


def test_minimal_completion():
    choices = completion(max_tokens=5, stop="\n")
    request = only_request(choices)
    assert request == GenerationRequest(prompt="Once", max_tokens=5, stop=("\n",))
    assert not request.is_chat
    assert (choices.n, choices.stream, choices.notes.echo) == (1, False, False)


def test_empty_prompt_is_allowed():
    assert only_request(completion(prompt="")).prompt == ""


def test_prompt_list_gives_one_request_per_prompt():
    choices = completion(prompt=["a", "b"], n=2, temperature=0.5)
    assert [r.prompt for r in choices.requests] == ["a", "b"]
    assert all(r.sampling.temperature == 0.5 for r in choices.requests)
    assert choices.n == 2


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, None, id="absent"),
        pytest.param({"logprobs": 0}, 0, id="zero"),
        pytest.param({"logprobs": 5}, 5, id="five"),
    ],
)
def test_completion_logprobs_is_an_int(fields, expected):
    assert only_request(completion(**fields)).logprobs == expected


@pytest.mark.parametrize(
    ("fields", "echo", "stream", "include_usage", "n"),
    [
        pytest.param({"echo": True}, True, False, False, 1, id="echo"),
        pytest.param({"echo": False}, False, False, False, 1, id="no-echo"),
        pytest.param(
            {"stream": True, "stream_options": {"include_usage": True}},
            False,
            True,
            True,
            1,
            id="stream-usage",
        ),
        pytest.param({"n": 2, "best_of": 2}, False, False, False, 2, id="best_of-equals-n"),
        pytest.param({"best_of": 1}, False, False, False, 1, id="best_of-1"),
        pytest.param({"suffix": ""}, False, False, False, 1, id="empty-suffix"),
        pytest.param({"suffix": None}, False, False, False, 1, id="null-suffix"),
    ],
)
def test_completion_options(fields, echo, stream, include_usage, n):
    choices = completion(**fields)
    assert (choices.notes.echo, choices.stream, choices.notes.include_usage, choices.n) == (
        echo,
        stream,
        include_usage,
        n,
    )


def test_completion_server_extras():
    request = only_request(
        completion(n_keep=-1, cache_prompt=True, slot_id=0, tokenize=True, logit_bias={"3": False})
    )
    assert (request.n_keep, request.cache_prompt, request.slot, request.tokenize) == (
        -1,
        True,
        0,
        True,
    )
    assert request.sampling.logit_bias == ((3, False),)


# -- bad input: every case names the field -------------------------------------------------


def bad(fields: dict, param: str, id: str):
    """A chat case: valid messages plus ``fields``, failing on ``param``."""
    return pytest.param({"messages": USER_HI, **fields}, param, id=id)


CHAT_ERRORS = [
    # the body and its messages
    pytest.param([], None, id="body-list"),
    pytest.param("hello", None, id="body-string"),
    pytest.param(None, None, id="body-null"),
    pytest.param({}, "messages", id="messages-missing"),
    pytest.param({"messages": None}, "messages", id="messages-null"),
    pytest.param({"messages": []}, "messages", id="messages-empty"),
    pytest.param({"messages": "hi"}, "messages", id="messages-string"),
    pytest.param({"messages": {"role": "user"}}, "messages", id="messages-object"),
    pytest.param({"messages": ["hi"]}, "messages[0]", id="message-string"),
    pytest.param({"messages": [None]}, "messages[0]", id="message-null"),
    pytest.param({"messages": [{"content": "hi"}]}, "messages[0].role", id="role-missing"),
    pytest.param(
        {"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role", id="role-unknown"
    ),
    pytest.param({"messages": [{"role": 1, "content": "hi"}]}, "messages[0].role", id="role-int"),
    pytest.param(
        {"messages": [{"role": "user", "content": "a"}, {"content": "b"}]},
        "messages[1].role",
        id="second-role-missing",
    ),
    pytest.param({"messages": [{"role": "user"}]}, "messages[0].content", id="content-missing"),
    pytest.param(
        {"messages": [{"role": "user", "content": None}]}, "messages[0].content", id="content-null"
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": 5}]}, "messages[0].content", id="content-int"
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": {"text": "hi"}}]},
        "messages[0].content",
        id="content-object",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "content": None}]},
        "messages[0].content",
        id="assistant-null-without-tool-calls",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "content": None, "tool_calls": []}]},
        "messages[0].content",
        id="assistant-null-with-empty-tool-calls",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/cat.png"}}],
                }
            ]
        },
        "messages[0].content[0].image_url.url",
        id="image-url-not-fetched",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        "messages[0].content[0].type",
        id="part-type-missing",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": ["hi"]}]},
        "messages[0].content[0]",
        id="part-string",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
        id="part-text-missing",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        "messages[0].content[0].text",
        id="part-text-int",
    ),
    pytest.param(
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "input_file"}]}
            ]
        },
        "messages[0].content[1].type",
        id="second-part-file",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": "hi", "tool_calls": []}]},
        "messages[0].tool_calls",
        id="tool-calls-on-user",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "content": "x", "tool_calls": "call"}]},
        "messages[0].tool_calls",
        id="tool-calls-string",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": "hi", "name": 5}]},
        "messages[0].name",
        id="name-int",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "1", "tool_call_id": 7}]},
        "messages[0].tool_call_id",
        id="tool-call-id-int",
    ),
    # sampling
    bad({"temperature": "hot"}, "temperature", id="temperature-string"),
    bad({"temperature": 3}, "temperature", id="temperature-3"),
    bad({"temperature": -0.1}, "temperature", id="temperature-negative"),
    bad({"temperature": float("nan")}, "temperature", id="temperature-nan"),
    bad({"temperature": float("inf")}, "temperature", id="temperature-inf"),
    bad({"temperature": True}, "temperature", id="temperature-bool"),
    bad({"temperature": [1]}, "temperature", id="temperature-list"),
    bad({"top_p": 2}, "top_p", id="top_p-2"),
    bad({"top_p": -1}, "top_p", id="top_p-negative"),
    bad({"top_k": -1}, "top_k", id="top_k-negative"),
    bad({"top_k": 1.5}, "top_k", id="top_k-fraction"),
    bad({"min_p": 1.5}, "min_p", id="min_p"),
    bad({"presence_penalty": 2.5}, "presence_penalty", id="presence_penalty"),
    bad({"frequency_penalty": -3}, "frequency_penalty", id="frequency_penalty"),
    bad({"repeat_penalty": -1}, "repeat_penalty", id="repeat_penalty"),
    bad({"seed": "1"}, "seed", id="seed-string"),
    bad({"seed": 2**40}, "seed", id="seed-too-big"),
    bad({"mirostat": 3}, "mirostat", id="mirostat"),
    bad({"mirostat_tau": -1}, "mirostat_tau", id="mirostat_tau"),
    bad({"mirostat_eta": "x"}, "mirostat_eta", id="mirostat_eta"),
    # lengths and counts
    bad({"max_tokens": 0}, "max_tokens", id="max_tokens-0"),
    bad({"max_tokens": -1}, "max_tokens", id="max_tokens-negative"),
    bad({"max_tokens": "10"}, "max_tokens", id="max_tokens-string"),
    bad({"max_tokens": True}, "max_tokens", id="max_tokens-bool"),
    bad({"max_tokens": 1.5}, "max_tokens", id="max_tokens-fraction"),
    bad({"max_completion_tokens": 0}, "max_completion_tokens", id="max_completion_tokens-0"),
    bad({"n_predict": -1}, "n_predict", id="n_predict-unbounded"),
    bad({"n_predict": 8, "max_tokens": 8}, "n_predict", id="n_predict-and-max_tokens"),
    bad({"n": 0}, "n", id="n-0"),
    bad({"n": MAX_CHOICES + 1}, "n", id="n-too-big"),
    bad({"n": "2"}, "n", id="n-string"),
    # stop and logit_bias
    bad({"stop": [1]}, "stop", id="stop-int-list"),
    bad({"stop": 5}, "stop", id="stop-int"),
    bad({"stop": {"a": 1}}, "stop", id="stop-object"),
    bad({"stop": ["a", None]}, "stop", id="stop-null-word"),
    bad({"stop": ["w"] * 17}, "stop", id="stop-too-many"),
    bad({"logit_bias": [[1, 2]]}, "logit_bias", id="logit_bias-list"),
    bad({"logit_bias": {"abc": 1}}, "logit_bias", id="logit_bias-word-key"),
    bad({"logit_bias": {"-1": 1}}, "logit_bias", id="logit_bias-negative-key"),
    bad({"logit_bias": {"1.5": 1}}, "logit_bias", id="logit_bias-float-key"),
    bad({"logit_bias": {"": 1}}, "logit_bias", id="logit_bias-empty-key"),
    bad({"logit_bias": {"1": 101}}, "logit_bias", id="logit_bias-too-big"),
    bad({"logit_bias": {"1": "5"}}, "logit_bias", id="logit_bias-string"),
    bad({"logit_bias": {"1": True}}, "logit_bias", id="logit_bias-true"),
    bad({"logit_bias": {"1": None}}, "logit_bias", id="logit_bias-null"),
    bad({"logit_bias": {"1": float("nan")}}, "logit_bias", id="logit_bias-nan"),
    # response_format
    bad({"response_format": "json"}, "response_format", id="format-string"),
    bad({"response_format": {}}, "response_format.type", id="format-type-missing"),
    bad({"response_format": {"type": "xml"}}, "response_format.type", id="format-type-unknown"),
    bad({"response_format": {"type": 1}}, "response_format.type", id="format-type-int"),
    bad(
        {"response_format": {"type": "json_schema"}},
        "response_format.json_schema",
        id="json_schema-missing",
    ),
    bad(
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "response_format.json_schema.schema",
        id="schema-missing",
    ),
    bad(
        {"response_format": {"type": "json_schema", "json_schema": {"schema": "object"}}},
        "response_format.json_schema.schema",
        id="schema-string",
    ),
    # streaming, logprobs, model, tools, server extras
    bad({"stream": "yes"}, "stream", id="stream-string"),
    bad({"stream": 1}, "stream", id="stream-int"),
    bad({"stream_options": "usage"}, "stream_options", id="stream_options-string"),
    bad(
        {"stream_options": {"include_usage": "yes"}},
        "stream_options.include_usage",
        id="include_usage-string",
    ),
    bad({"logprobs": "yes"}, "logprobs", id="logprobs-string"),
    bad({"logprobs": True, "top_logprobs": 21}, "top_logprobs", id="top_logprobs-21"),
    bad({"top_logprobs": -1}, "top_logprobs", id="top_logprobs-alone-negative"),
    bad({"model": 5}, "model", id="model-int"),
    bad({"tools": {"name": "x"}}, "tools", id="tools-object"),
    bad({"tools": ["add"]}, "tools[0]", id="tool-string"),
    bad({"tools": [{"type": "function"}]}, "tools[0].function", id="tool-function-missing"),
    bad(
        {"tools": [{"type": "function", "function": {}}]},
        "tools[0].function.name",
        id="tool-name-missing",
    ),
    bad({"tool_choice": "required"}, "tool_choice", id="tool_choice-without-tools"),
    bad(
        {"tools": [{"type": "function", "function": {"name": "add"}}], "tool_choice": "any"},
        "tool_choice",
        id="tool_choice-unknown",
    ),
    bad(
        {
            "tools": [{"type": "function", "function": {"name": "add"}}],
            "tool_choice": {"type": "function", "function": {"name": "sub"}},
        },
        "tool_choice.function.name",
        id="tool_choice-names-another-function",
    ),
    bad(
        {
            "tools": [{"type": "function", "function": {"name": "add"}}],
            "tool_choice": {"type": "function", "function": {"name": 3}},
        },
        "tool_choice.function.name",
        id="tool_choice-name-int",
    ),
    bad({"parallel_tool_calls": "no"}, "parallel_tool_calls", id="parallel_tool_calls"),
    bad(
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "objekt"}}}},
        "response_format.json_schema.schema",
        id="schema-invalid-type",
    ),
    bad(
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"properties": {"a": {"minimum": "1"}}}},
            }
        },
        "response_format.json_schema.schema",
        id="schema-invalid-nested",
    ),
    bad({"n_keep": -2}, "n_keep", id="n_keep"),
    bad({"cache_prompt": "yes"}, "cache_prompt", id="cache_prompt"),
    bad({"slot_id": -2}, "slot_id", id="slot_id"),
    bad({"id_slot": "0"}, "id_slot", id="id_slot"),
    bad({"tokenize": 1}, "tokenize", id="tokenize"),
]


@pytest.mark.parametrize(("body", "param"), CHAT_ERRORS)
def test_bad_chat_input_names_the_field(body, param):
    with pytest.raises(InvalidRequestError) as excinfo:
        parse_chat(body, LIMITS)
    error = excinfo.value
    assert error.param == param
    assert error.status == 400
    assert error.type == "invalid_request_error"
    if param is not None:
        assert param in error.message


COMPLETION_ERRORS = [
    pytest.param([], None, id="body-list"),
    pytest.param({}, "prompt", id="prompt-missing"),
    pytest.param({"prompt": None}, "prompt", id="prompt-null"),
    pytest.param({"prompt": 5}, "prompt", id="prompt-int"),
    pytest.param({"prompt": [1, 2, 3]}, "prompt", id="prompt-token-ids"),
    pytest.param({"prompt": [[1, 2]]}, "prompt", id="prompt-token-id-lists"),
    pytest.param({"prompt": []}, "prompt", id="prompt-empty-list"),
    pytest.param({"prompt": ["a", 1]}, "prompt", id="prompt-mixed-list"),
    pytest.param({"prompt": "x", "suffix": 5}, "suffix", id="suffix-int"),
    pytest.param({"prompt": "x", "best_of": 2}, "best_of", id="best_of-not-n"),
    pytest.param({"prompt": "x", "best_of": 0}, "best_of", id="best_of-0"),
    pytest.param({"prompt": "x", "n": 2, "best_of": 3}, "best_of", id="best_of-above-n"),
    pytest.param({"prompt": "x", "logprobs": 21}, "logprobs", id="logprobs-21"),
    pytest.param({"prompt": "x", "logprobs": True}, "logprobs", id="logprobs-bool"),
    pytest.param({"prompt": "x", "logprobs": -1}, "logprobs", id="logprobs-negative"),
    pytest.param({"prompt": "x", "echo": "yes"}, "echo", id="echo-string"),
    pytest.param({"prompt": "x", "stream": "yes"}, "stream", id="stream-string"),
    pytest.param({"prompt": "x", "n": 0}, "n", id="n-0"),
    pytest.param({"prompt": ["a", "b"], "n": 3}, "n", id="n-times-prompts-too-big"),
    pytest.param({"prompt": "x", "temperature": "hot"}, "temperature", id="temperature"),
    pytest.param({"prompt": "x", "max_tokens": 0}, "max_tokens", id="max_tokens-0"),
    pytest.param({"prompt": "x", "stop": [1]}, "stop", id="stop"),
]


@pytest.mark.parametrize(("body", "param"), COMPLETION_ERRORS)
def test_bad_completion_input_names_the_field(body, param):
    with pytest.raises(InvalidRequestError) as excinfo:
        parse_completion(body, LIMITS)
    assert excinfo.value.param == param
    assert excinfo.value.status == 400


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("1" * 5000, id="over-int-digit-limit"),
    ],
)
def test_logit_bias_key_that_int_rejects_is_a_400(key):
    with pytest.raises(InvalidRequestError) as excinfo:
        chat(logit_bias={key: 1})
    assert excinfo.value.param == "logit_bias"


@pytest.mark.parametrize("name", ["temperature", "top_p", "presence_penalty"])
def test_huge_integer_for_a_number_field_is_a_400(name):
    with pytest.raises(InvalidRequestError) as excinfo:
        chat(**{name: 10**400})
    assert excinfo.value.param == name


@pytest.mark.parametrize(
    ("fields", "suffix"),
    [
        ({"prompt": "def f(x):\n    ", "suffix": "\n    return y"}, "\n    return y"),
        ({"prompt": ["a = ", "b = "], "suffix": " + 1"}, " + 1"),  # each prompt, one gap
        ({"prompt": "a = ", "suffix": ""}, None),  # nothing after the gap: a plain completion
    ],
)
def test_a_suffix_asks_to_fill_the_gap_after_each_prompt(fields, suffix):
    requests = completion(**fields).requests
    assert [r.suffix for r in requests] == [suffix] * len(requests)
    assert [r.prompt for r in requests] == (
        fields["prompt"] if isinstance(fields["prompt"], list) else [fields["prompt"]]
    )


@pytest.mark.parametrize(
    ("parse", "body", "unread"),
    [
        (
            chat,
            {"user": "u", "repetition_penalty": 1.1, "json_schema": {}, "temperature": 0.5},
            {"user": "u", "repetition_penalty": 1.1, "json_schema": {}},
        ),
        (chat, {"priority": 3, "enable_thinking": True, "n": 2, "logprobs": True}, {}),
        (
            completion,
            {"echo": True, "ignore_eos": True, "min_tokens": 2},
            {"ignore_eos": True, "min_tokens": 2},
        ),
    ],
)
def test_the_fields_the_proxy_does_not_read_are_kept_as_they_came(parse, body, unread):
    assert only_request(parse(**body)).unread == unread


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        pytest.param({"modalities": ["text"]}, None, id="text"),
        pytest.param({"modalities": ["text", "audio"]}, "modalities", id="text-and-audio"),
        pytest.param({"modalities": ["audio"]}, "modalities", id="audio"),
        pytest.param({"modalities": "text"}, "modalities", id="not-a-list"),
        pytest.param({"audio": {"voice": "alloy"}}, "audio", id="audio-field"),
        pytest.param({"audio": None}, None, id="audio-null"),
    ],
)
def test_a_chat_that_asks_for_an_audio_answer_is_refused_by_name(fields, refused):
    """The gateway writes the answer itself, in text: audio asked for would be billed and
    dropped. A chat that asks for none goes on with both fields as it sent them."""
    if refused is None:
        assert only_request(chat(**fields)).unread == fields
        return
    with pytest.raises(InvalidRequestError) as error:
        chat(**fields)
    assert (error.value.status, error.value.param) == (400, refused)
    assert "answers in text and does not carry audio answers back" in error.value.message


def test_a_json_object_with_a_schema_asks_for_the_schema_as_llama_server_reads_it():
    schema = {"type": "string", "enum": ["yes"]}
    request = only_request(chat(response_format={"type": "json_object", "schema": schema}))
    assert request.response_format == ResponseFormat("json_schema", schema)
    with pytest.raises(InvalidRequestError) as error:
        chat(response_format={"type": "json_object", "schema": "yes"})
    assert error.value.param == "response_format.schema"


def test_a_chat_keeps_its_body_as_it_came_and_what_was_read_of_it():
    body = {"messages": USER_HI, "store": True}
    request = only_request(parse_chat(body, LIMITS))
    assert request.verbatim.api == "chat" and request.verbatim.body is body
    assert request.verbatim.messages is request.messages


@pytest.mark.parametrize(
    "amend, same",
    [
        (lambda request: request, True),  # nothing changed: the ask itself, not a copy
        (lambda request: request.in_conversation("thread-1"), False),
        # one of two changed: a new ask, the other request kept as it was
        (lambda r: r.in_conversation("thread-1") if r.prompt == "Twice" else r, False),
    ],
)
def test_an_ask_amended_is_new_only_where_a_request_changed(amend, same):
    ask = completion(prompt=["Once", "Twice"])
    amended = ask.amended(amend)
    assert (amended is ask) is same
    assert [amend(request) for request in ask.requests] == list(amended.requests)
    assert [new is old for new, old in zip(amended.requests, ask.requests, strict=True)] == [
        amend(request) is request for request in ask.requests
    ]
