"""Each model family's tool-call format: described, written back, read whole and streamed."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.backends.structured.replies import calling_chunks, with_calls
from proxy.backends.structured.toolformats import (
    FORMATS,
    StreamingToolParser,
    format_of_template,
    tool_names,
)
from proxy.core.answers import Chunk, Completion, Usage

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
]
NAMES = tool_names(TOOLS)
CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    },
    {
        "id": "call_2",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1, "b": [2, "x"]}'},
    },
]


def read(calls) -> list:
    return [(call.name, json.loads(call.arguments)) for call in calls]


EXPECTED = [("get_weather", {"city": "Oslo"}), ("add", {"a": 1, "b": [2, "x"]})]
MULTI = ["hermes", "llama3", "mistral", "plain"]  # formats that write several calls


@pytest.mark.parametrize("name", list(FORMATS))
def test_the_system_prompt_describes_every_tool(name):
    text = FORMATS[name].system_prompt(TOOLS)
    assert "get_weather" in text and "add" in text and '"city"' in text


@pytest.mark.parametrize("name", MULTI)
def test_written_calls_read_back(name):
    tool_format = FORMATS[name]
    content, calls = tool_format.parse(tool_format.render_call(CALLS), NAMES)
    assert content == "" and read(calls) == EXPECTED
    assert len({call.id for call in calls}) == 2
    assert all(call.id.startswith("call_") for call in calls)
    assert all(
        json.dumps(json.loads(c.arguments), separators=(",", ":"), ensure_ascii=False)
        == c.arguments
        for c in calls
    )


def test_mistral_models_own_call_ids_are_kept():
    _, calls = FORMATS["mistral"].parse(
        '[TOOL_CALLS][{"name": "add", "arguments": {"a": 1}, "id": "a1b2c3d4e"}, '
        '{"name": "add", "arguments": {"a": 2}}]',
        {"add"},
    )
    assert calls[0].id == "a1b2c3d4e" and calls[1].id.startswith("call_")


def test_chatglm3_reads_its_one_call_back():
    tool_format = FORMATS["chatglm3"]
    content, calls = tool_format.parse(tool_format.render_call(CALLS[:1]), NAMES)
    assert content == "" and read(calls) == EXPECTED[:1]


@pytest.mark.parametrize(
    ("name", "text", "content", "expected"),
    [
        (
            "hermes",
            'Checking.\n<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>',
            "Checking.\n",
            [("add", {"a": 1})],
        ),
        ("hermes", '<tool_call>{"name": "add", "arguments": {"a": 1}}', "", [("add", {"a": 1})]),
        (
            "llama3",
            '<|python_tag|>{"name": "add", "parameters": {"a": 1}}',
            "",
            [("add", {"a": 1})],
        ),
        (
            "llama3",
            ' {"name": "add", "parameters": {"a": 1}}; {"name": "add", "parameters": {}}',
            "",
            [("add", {"a": 1}), ("add", {})],
        ),
        (
            "mistral",
            'Sure[TOOL_CALLS][{"name": "add", "arguments": {"a": 1}}]',
            "Sure",
            [("add", {"a": 1})],
        ),
        (
            "chatglm3",
            "add\n```python\ntool_call(a=1, b='x')\n```",
            "",
            [("add", {"a": 1, "b": "x"})],
        ),
    ],
)
def test_calls_in_the_wild(name, text, content, expected):
    found_content, calls = FORMATS[name].parse(text, NAMES)
    assert (found_content, read(calls)) == (content, expected)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("hermes", '<tool_call>{"name": "add", "arguments": {"a": 1}</tool_call>'),  # bad JSON
        ("hermes", '<tool_call>{"name": "rm", "arguments": {}}</tool_call>'),  # not offered
        ("hermes", '<tool_call>{"arguments": {}}</tool_call>'),  # no name
        ("hermes", '<tool_call>{"name": "add", "arguments": "1"}</tool_call>'),  # not an object
        ("hermes", '<tool_call>{"name": "add", "arguments": {}}</tool_call> and more'),
        ("llama3", '{"name": "add", "parameters": {"a": 1}} is what I would call'),
        ("llama3", "The answer is 4."),
        ("mistral", "[TOOL_CALLS][{]"),
        ("chatglm3", "The weather\nis fine"),
        ("chatglm3", "add\nnot json at all"),  # arguments that are no object
        ("chatglm3", "add\n```python\ntool_call(a=__import__('os'))\n```"),
        ("plain", "<tool_call>__import__('os')</tool_call>"),
    ],
)
def test_anything_else_stays_content(name, text):
    assert FORMATS[name].parse(text, NAMES) == (text, ())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% if tools %}<tool_call>{% endif %}", "hermes"),
        ("[TOOL_CALLS]", "mistral"),
        ("<|python_tag|>", "llama3"),
        ("{{ '<|observation|>' }}", "chatglm3"),
        ("{{ x }}", "plain"),
    ],
)
def test_format_of_a_template(source, expected):
    assert format_of_template(source) == expected


ANSWERS = {
    "hermes": 'Let me check <tools>. <tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>',
    "plain": "No tools needed: <tool_ca is not a tag.",
    "llama3": '{"name": "add", "parameters": {"a": 1}}',
    "mistral": 'Ok [TOOL_CALLS][{"name": "add", "arguments": {}}]',
    "chatglm3": "add\n```python\ntool_call(a=1)\n```",
}


def streamed(name: str, pieces: list) -> tuple:
    parser = StreamingToolParser(FORMATS[name], NAMES)
    sent = "".join(parser.feed(piece) for piece in pieces)
    rest, calls = parser.close()
    return sent + rest, read(calls)


def whole(name: str) -> tuple:
    content, calls = FORMATS[name].parse(ANSWERS[name], NAMES)
    return content, read(calls)


@pytest.mark.parametrize("name", list(ANSWERS))
def test_a_stream_split_anywhere_reads_as_the_whole(name):
    answer = ANSWERS[name]
    for cut in range(len(answer) + 1):
        assert streamed(name, [answer[:cut], answer[cut:]]) == whole(name), cut


@given(name=st.sampled_from(list(ANSWERS)), cuts=st.lists(st.integers(0, 80), max_size=8))
def test_a_stream_in_any_pieces_reads_as_the_whole(name, cuts):
    answer = ANSWERS[name]
    bounds = [0, *sorted(c % (len(answer) + 1) for c in cuts), len(answer)]
    pieces = [answer[a:b] for a, b in pairwise(bounds)]
    assert streamed(name, pieces) == whole(name)


def test_plain_text_is_not_withheld():
    parser = StreamingToolParser(FORMATS["hermes"], NAMES)
    assert parser.feed("Hello there") == "Hello there"
    assert parser.feed(" <tool") == " "  # may be the start of a call: held
    assert parser.feed("box>") == "<toolbox>"


def test_chunks_carry_calls_in_the_finish_chunk():
    pieces = ["Sure. <tool", '_call>{"name": "add", ', '"arguments": {"a": 1}}</tool_call>']
    chunks = [Chunk(text=p) for p in pieces] + [Chunk(finish_reason="stop", usage=Usage(3, 9))]
    out = list(calling_chunks((chunk for chunk in chunks), FORMATS["hermes"], NAMES))
    assert "".join(c.text for c in out) == "Sure. "
    assert out[-1].finish_reason == "tool_calls" and read(out[-1].tool_calls) == [("add", {"a": 1})]
    assert out[-1].usage == Usage(3, 9)


def test_a_whole_answer_with_a_call_finishes_with_tool_calls():
    answer = Completion(
        '<tool_call>{"name": "add", "arguments": {}}</tool_call>', "stop", Usage(1, 2)
    )
    called = with_calls(answer, FORMATS["plain"], NAMES)
    assert (called.text, called.finish_reason, read(called.tool_calls)) == (
        "",
        "tool_calls",
        [("add", {})],
    )
    assert with_calls(Completion("hi", "stop", Usage()), FORMATS["plain"], NAMES).tool_calls == ()
