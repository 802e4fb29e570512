"""What a request constrains the output to: the fields sent, and tool grammars that admit
exactly calls, in each format, to the allowed tools with valid arguments."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest

from proxy.backends.structured.constraints import output_fields, tool_grammar
from proxy.backends.structured.toolformats import FORMATS, tool_names
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest, Message, ResponseFormat, ToolChoice

from .gbnf import Grammar

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 10},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
}
TOOLS = (WEATHER, CLOCK)
CHAT = (Message("user", "weather?"),)


def asking(
    choice: ToolChoice = ToolChoice("required"), parallel: bool = True, **fields
) -> GenerationRequest:
    return GenerationRequest(
        messages=CHAT, tools=TOOLS, tool_choice=choice, parallel_tool_calls=parallel, **fields
    )


def schema_of(name: str) -> dict:
    return next(t for t in TOOLS if t["function"]["name"] == name)["function"]["parameters"]


@pytest.mark.parametrize("name", list(FORMATS))
def test_sampled_calls_are_valid_calls(llama, name):
    tool_format = FORMATS[name]
    text = tool_grammar(tool_format, asking(parallel=name != "chatglm3"))
    assert llama.parses(text)
    grammar, chooser = Grammar(text), random.Random(name)
    for _ in range(40):
        sample = grammar.sample(chooser)
        content, calls = tool_format.parse(sample, tool_names(TOOLS))
        assert content == "" and calls, sample
        for call in calls:
            jsonschema.validate(json.loads(call.arguments), schema_of(call.name))
        assert llama.accepts(text, sample)


@pytest.mark.parametrize("name", ["hermes", "llama3", "mistral", "plain"])
def test_written_calls_are_admitted_and_bad_ones_not(name):
    tool_format = FORMATS[name]
    grammar = Grammar(tool_grammar(tool_format, asking()))
    good = [
        {
            "id": "c",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "days": 3}'},
        }
    ]
    assert grammar.admits(tool_format.render_call(good))
    assert grammar.admits(tool_format.render_call(good * 2))
    for arguments in (
        '{"city": "Oslo", "days": 9}',
        '{"days": 3}',
        '{"city": 5}',
        '{"city": "Oslo", "wind": 1}',
    ):
        bad = [{"function": {"name": "get_weather", "arguments": arguments}}]
        assert not grammar.admits(tool_format.render_call(bad)), arguments
    unknown = [{"function": {"name": "rm", "arguments": "{}"}}]
    assert not grammar.admits(tool_format.render_call(unknown))


def test_mistral_calls_may_carry_the_ids_its_models_write():
    grammar = Grammar(tool_grammar(FORMATS["mistral"], asking()))
    assert grammar.admits('[TOOL_CALLS][{"name": "now", "arguments": {}, "id": "a1b2c3d4e"}]')
    assert grammar.admits('[TOOL_CALLS][{"name": "now", "arguments": {}}]')
    assert not grammar.admits('[TOOL_CALLS][{"name": "now", "arguments": {}, "x": "y"}]')
    assert not Grammar(tool_grammar(HERMES, asking())).admits(
        '<tool_call>{"name": "now", "arguments": {}, "id": "a1b2c3d4e"}</tool_call>'
    )


def test_a_named_function_is_the_only_one_admitted():
    tool_format = FORMATS["hermes"]
    grammar = Grammar(tool_grammar(tool_format, asking(ToolChoice("function", "now"))))
    now = [{"function": {"name": "now", "arguments": "{}"}}]
    weather = [{"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    assert grammar.admits(tool_format.render_call(now))
    assert not grammar.admits(tool_format.render_call(weather))
    assert not grammar.admits(tool_format.render_call(now * 2))  # one call of it


def test_one_call_when_calls_may_not_run_in_parallel():
    tool_format = FORMATS["hermes"]
    grammar = Grammar(tool_grammar(tool_format, asking(parallel=False)))
    call = [{"function": {"name": "now", "arguments": "{}"}}]
    assert grammar.admits(tool_format.render_call(call))
    assert not grammar.admits(tool_format.render_call(call * 2))


HERMES = FORMATS["hermes"]


@pytest.mark.parametrize(
    ("request_", "json_schema", "lazy", "expected"),
    [
        pytest.param(GenerationRequest(prompt="p"), True, True, set(), id="nothing"),
        pytest.param(
            GenerationRequest(prompt="p", grammar='root ::= "x"'),
            False,
            False,
            {"grammar"},
            id="client-grammar",
        ),
        pytest.param(
            GenerationRequest(
                prompt="p", response_format=ResponseFormat("json_schema", {"type": "object"})
            ),
            True,
            False,
            {"json_schema"},
            id="server-compiles-schema",
        ),
        pytest.param(
            GenerationRequest(
                prompt="p", response_format=ResponseFormat("json_schema", {"type": "object"})
            ),
            False,
            False,
            {"grammar"},
            id="proxy-compiles",
        ),
        pytest.param(asking(), True, True, {"grammar"}, id="required-call"),
        pytest.param(
            asking(ToolChoice()),
            True,
            True,
            {"grammar", "grammar_lazy", "grammar_triggers", "preserved_tokens"},
            id="auto-lazy",
        ),
        pytest.param(asking(ToolChoice()), False, False, set(), id="auto-free-on-old-servers"),
    ],
)
def test_the_fields_sent(request_, json_schema, lazy, expected):
    fields = output_fields(request_, HERMES, json_schema=json_schema, lazy_grammar=lazy)
    assert set(fields) == expected
    if "grammar_triggers" in fields:
        assert fields["grammar_triggers"] == [{"type": 1, "value": "<tool_call>"}]


def test_a_required_call_cannot_also_follow_a_schema():
    with pytest.raises(InvalidRequestError) as error:
        output_fields(
            asking(response_format=ResponseFormat("json_object")),
            HERMES,
            json_schema=True,
            lazy_grammar=True,
        )
    assert error.value.param == "tool_choice"


def test_unsupported_tool_parameters_name_the_tool():
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"a": {"not": {}}}},
        },
    }
    with pytest.raises(InvalidRequestError) as error:
        tool_grammar(
            HERMES,
            GenerationRequest(
                messages=CHAT, tools=(WEATHER, tool), tool_choice=ToolChoice("required")
            ),
        )
    assert error.value.param == "tools[1].function.parameters"


def test_a_tool_the_compiler_cannot_express_leaves_auto_calls_free():
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"a": {"not": {}}}},
        },
    }
    request = GenerationRequest(messages=CHAT, tools=(WEATHER, tool))
    assert output_fields(request, HERMES, json_schema=True, lazy_grammar=True) == {}
