"""The chatglm backend's pure parts: tool calls, stop words, replies, decoding, translation."""

from __future__ import annotations

import json

import pytest

from proxy.backends.chatglm import translation
from proxy.backends.chatglm.reply import ReplyFilter, TextDecoder
from proxy.backends.structured import chatglm3
from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError
from proxy.core.types import (
    GenerationRequest,
    Message,
    ResponseFormat,
    Sampling,
    ToolCall,
    ToolChoice,
)

NAMES = {"get_weather", "search"}


def call_of(body: str, name: str = "get_weather"):
    return chatglm3.parse(f"{name}\n```python\n{body}\n```", NAMES)


@pytest.mark.parametrize(
    "body, arguments",
    [
        ("tool_call(city='Paris')", {"city": "Paris"}),
        ("tool_call()", {}),
        (
            "tool_call(n=3, ok=True, none=None, xs=[1, 'a', (2, 3)], d={'k': -1.5})",
            {"n": 3, "ok": True, "none": None, "xs": [1, "a", [2, 3]], "d": {"k": -1.5}},
        ),
        ("tool_call(city='東京')", {"city": "東京"}),
        ('{"city": "Paris", "days": 2}', {"city": "Paris", "days": 2}),  # GLM-4 writes JSON
    ],
    ids=["string", "empty", "literals", "unicode", "json"],
)
def test_tool_call_arguments_become_a_json_object(body, arguments):
    call = call_of(body)
    assert call.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.arguments) == arguments


@pytest.mark.parametrize(
    "body",
    [
        "__import__('os').system('touch {marker}')",
        "tool_call(city=__import__('os').system('touch {marker}'))",
        "tool_call(city=open('{marker}', 'w').write('x'))",
        "tool_call(**{{'city': 'Paris'}})",
        "tool_call('Paris')",
        "other(city='Paris')",
        "tool_call(x=(lambda: 1)())",
        "tool_call(x={{1, 2}})",
        "tool_call(x=b'bytes')",
        "tool_call(x=1e999)",
        "tool_call(x=1j)",
        "tool_call(x=" + "[" * 500 + "]" * 500 + ")",
        "tool_call(x='a'\x00)",
        "tool_call(city='Paris'",
        "[1, 2]",
    ],
    ids=[
        "import",
        "import-in-arg",
        "open",
        "double-star",
        "positional",
        "other-name",
        "lambda",
        "set",
        "bytes",
        "infinity",
        "complex",
        "deep",
        "nul",
        "unclosed",
        "json-list",
    ],
)
def test_unreadable_arguments_come_back_as_a_plain_string(body, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = body.format(marker=tmp_path / "pwned")
    call = call_of(body)
    assert json.loads(call.arguments) == body
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "text",
    [
        "get_weather",  # no newline: no arguments follow
        "unknown_tool\n```python\ntool_call()\n```",
        "It is sunny.\nget_weather\n```python\ntool_call()\n```",
    ],
    ids=["no-newline", "unknown-name", "text-first"],
)
def test_text_that_is_no_tool_call(text):
    assert chatglm3.parse(text, NAMES) is None


def test_tool_call_without_a_fence_reads_the_rest():
    call = chatglm3.parse("search\n  tool_call(q='x')  ", NAMES)
    assert json.loads(call.arguments) == {"q": "x"}


@pytest.mark.parametrize(
    "arguments, line",
    [
        ('{"city": "Paris", "days": 3}', "tool_call(city='Paris', days=3)"),
        ('{"ok": true, "none": null, "xs": [1]}', "tool_call(ok=True, none=None, xs=[1])"),
        ("not json", "not json"),
        ('{"not an identifier": 1}', '{"not an identifier": 1}'),
        ("", ""),
    ],
    ids=["simple", "literals", "not-json", "odd-key", "empty"],
)
def test_history_tool_calls_are_written_like_chatglm3(arguments, line):
    text = chatglm3.render(ToolCall("call_1", "get_weather", arguments))
    assert text == f"get_weather\n```python\n{line}\n```"


def test_a_rendered_call_reads_back():
    arguments = {"city": "Paris", "days": 3, "units": None, "tags": ["a", "b"]}
    text = chatglm3.render(ToolCall("call_1", "search", json.dumps(arguments)))
    assert json.loads(chatglm3.parse(text, NAMES).arguments) == arguments


# -- replies -----------------------------------------------------------------------------


def test_a_chat_reply_is_trimmed_at_the_start_only():
    reply = ReplyFilter((), trim=True)
    assert [reply.feed(p) for p in ["\n", " ", " Hi", " there "]] == ["", "", "Hi", " there "]
    assert reply.finish(tool_turn=False) == ("", ())


def test_completions_are_not_trimmed():
    reply = ReplyFilter((), trim=False)
    assert reply.feed("\n Hi") == "\n Hi"


def test_a_tool_call_is_withheld_and_returned_at_the_end():
    reply = ReplyFilter((), ["get_weather"], trim=True)
    pieces = ["\n", "get", "_weather\n", "```python\n", "tool_call(city='Paris')\n", "```"]
    assert [reply.feed(p) for p in pieces] == [""] * len(pieces)
    text, calls = reply.finish(tool_turn=True)
    assert text == "" and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}


def test_withheld_text_is_content_when_the_turn_ends_otherwise():
    reply = ReplyFilter((), ["get_weather"], trim=True)
    assert reply.feed("get_weather\nsunny") == ""
    assert reply.finish(tool_turn=False) == ("get_weather\nsunny", ())


def test_plain_text_is_released_as_soon_as_it_cannot_be_a_tool_call():
    reply = ReplyFilter((), ["get_weather"], trim=True)
    assert reply.feed("ge") == ""
    assert reply.feed("ntle") == "gentle"
    assert reply.feed(" rain") == " rain"
    assert reply.finish(tool_turn=True) == ("", ())


def test_a_stop_word_cuts_a_reply_with_tools():
    reply = ReplyFilter(["STOP"], ["get_weather"], trim=True)
    assert reply.feed("Sunny STO") == "Sunny "
    assert reply.feed("P and more") == ""
    assert reply.stopped
    assert reply.finish(tool_turn=False) == ("", ())


# -- decoding ----------------------------------------------------------------------------


def byte_decoder(pieces: dict):
    """A tokenizer whose ids are byte strings; partial UTF-8 at the end is ``None``."""

    def decode(ids):
        try:
            return b"".join(pieces[i] for i in ids).decode("utf-8")
        except UnicodeDecodeError:
            return None

    return decode


def test_characters_split_over_tokens_come_out_whole():
    decoder = TextDecoder(byte_decoder({1: b"Hi ", 2: b"\xe4\xb8", 3: b"\x96", 4: b"!"}))
    assert [decoder.add(i) for i in (1, 2, 3, 4)] == ["Hi ", "", "世", "!"]
    assert decoder.flush() == ""


def test_a_cut_off_character_is_flushed_as_a_replacement():
    decoder = TextDecoder(byte_decoder({1: b"ok", 2: b"\xe4\xb8"}))
    assert decoder.add(1) == "ok"
    assert decoder.add(2) == ""
    assert decoder.flush() == "\ufffd"


def test_leading_spaces_survive_a_tokenizer_that_strips_the_first_one():
    pieces = {1: " Hello", 2: " big", 3: " world"}

    def decode(ids):  # like SentencePiece: the first piece loses its leading space
        return "".join(pieces[i] for i in ids)[1:] if ids else ""

    decoder = TextDecoder(decode)
    assert "".join(decoder.add(i) for i in (1, 2, 3)) + decoder.flush() == "Hello big world"


def test_replacement_characters_wait_for_the_rest_of_the_character():
    pieces = {1: "a", 2: "\ufffd"}

    def decode(ids):  # SentencePiece shows U+FFFD until a byte sequence is complete
        text = "".join(pieces[i] for i in ids)
        return text.replace("a\ufffd\ufffd", "a世")

    decoder = TextDecoder(decode)
    assert [decoder.add(i) for i in (1, 2, 2)] == ["a", "", "世"]


# -- messages ----------------------------------------------------------------------------

TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather",
            "parameters": {"type": "object"},
        },
    },
)


def test_messages_become_chatglm_turns():
    chat = (
        Message("developer", "Be brief."),
        Message("system", "Use tools."),
        Message("user", "Weather in Paris?", name="ann"),
        Message("assistant", "", tool_calls=(ToolCall("c1", "get_weather", '{"city": "Paris"}'),)),
        Message("tool", '{"temp": 20}', tool_call_id="c1"),
        Message("function", "old style"),
        Message("assistant", "Warm."),
    )
    turns = translation.turns(chat, TOOLS)
    assert [role for role, _ in turns] == [
        "system",
        "system",
        "system",
        "user",
        "assistant",
        "observation",
        "observation",
        "assistant",
    ]
    assert turns[0][1].startswith(translation.TOOLS_PREAMBLE + "\n")
    assert json.loads(turns[0][1].split("\n", 1)[1]) == [TOOLS[0]["function"]]
    assert turns[4][1] == "get_weather\n```python\ntool_call(city='Paris')\n```"
    assert turns[5][1] == '{"temp": 20}'


def test_assistant_text_and_tool_calls_become_separate_turns():
    call = ToolCall("c1", "search", "{}")
    turns = translation.turns((Message("assistant", "Let me look.", tool_calls=(call, call)),))
    assert turns == [
        ("assistant", "Let me look."),
        ("assistant", "search\n```python\ntool_call()\n```"),
        ("assistant", "search\n```python\ntool_call()\n```"),
    ]


def test_no_tools_no_system_message():
    assert translation.turns((Message("user", "hi"),)) == [("user", "hi")]
    assert translation.tool_names(TOOLS) == {"get_weather"}


# -- sampling options --------------------------------------------------------------------


@pytest.mark.parametrize(
    "sampling, expected",
    [
        (
            Sampling(),
            {
                "do_sample": True,
                "temperature": 0.95,
                "top_p": 0.7,
                "top_k": 0,
                "repetition_penalty": 1.0,
            },
        ),
        (Sampling(temperature=0), {"do_sample": False}),
        (Sampling(top_p=0), {"do_sample": False}),
        (
            Sampling(temperature=1.5, top_p=1, top_k=40, repeat_penalty=1.1),
            {
                "do_sample": True,
                "temperature": 1.5,
                "top_p": 1,
                "top_k": 40,
                "repetition_penalty": 1.1,
            },
        ),
        (
            Sampling(presence_penalty=1, frequency_penalty=1, min_p=0.1, seed=3, mirostat=2),
            {"do_sample": True, "repetition_penalty": 1.0},
        ),
    ],
    ids=["defaults", "temperature-0", "top-p-0", "set", "ignored"],
)
def test_sampling_options(sampling, expected):
    result = translation.sampling(GenerationRequest(messages=(), sampling=sampling))
    assert {key: result[key] for key in expected} == expected


@pytest.mark.parametrize(
    "request_, param, error",
    [
        (GenerationRequest(logprobs=2), "logprobs", NotImplementedByBackendError),
        (
            GenerationRequest(sampling=Sampling(logit_bias=((1, 2.0),))),
            "logit_bias",
            NotImplementedByBackendError,
        ),
        (
            GenerationRequest(response_format=ResponseFormat("json_object")),
            "response_format",
            NotImplementedByBackendError,
        ),
        (
            GenerationRequest(sampling=Sampling(repeat_penalty=0)),
            "repeat_penalty",
            InvalidRequestError,
        ),
        (
            GenerationRequest(
                tools=({"function": {"name": "f"}},), tool_choice=ToolChoice("required")
            ),
            "tool_choice",
            NotImplementedByBackendError,
        ),
    ],
    ids=["logprobs", "logit-bias", "response-format", "zero-penalty", "required-tool"],
)
def test_options_chatglm_cannot_honour(request_, param, error):
    with pytest.raises(error) as info:
        translation.sampling(request_)
    assert info.value.param == param
