"""What every dialect bounds alike: the tools a request offers, and the size of each schema
the server is to compile."""

from __future__ import annotations

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.core.fields import json_size
from proxy.dialects import anthropic, responses
from proxy.dialects.dialect import Limits
from proxy.dialects.ollama import chat as ollama_chat
from proxy.dialects.ollama import generate as ollama_generate
from proxy.dialects.openai import chat, completions

LIMITS = Limits(max_tools=2, max_schema_size=100)
SMALL = {"type": "object", "properties": {"city": {"type": "string"}}}
LARGEST = {**SMALL, "description": "x" * (100 - json_size({**SMALL, "description": ""}))}
LARGE = {**SMALL, "description": LARGEST["description"] + "x"}
HI = [{"role": "user", "content": "hi"}]


def function(name: str, schema: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": schema}}


# each dialect: its parse, a body around the given tools, the tools in its shape, and where
# a tool's schema is
TOOLS = {
    "chat": (
        chat.parse,
        lambda tools: {"messages": HI, "tools": tools},
        function,
        "tools[{i}].function.parameters",
    ),
    "messages": (
        anthropic.parse,
        lambda tools: {"max_tokens": 8, "messages": HI, "tools": tools},
        lambda name, schema: {"name": name, "input_schema": schema},
        "tools[{i}].input_schema",
    ),
    "responses": (
        responses.parse,
        lambda tools: {"input": "hi", "tools": tools},
        lambda name, schema: {"type": "function", "name": name, "parameters": schema},
        "tools[{i}].parameters",
    ),
    "ollama": (
        ollama_chat.parse,
        lambda tools: {"model": "m", "messages": HI, "tools": tools},
        function,
        "tools[{i}].function.parameters",
    ),
}
# each dialect's schema of the answer, by the body that holds it and where it is
FORMATS = {
    "chat": (
        chat.parse,
        lambda schema: {
            "messages": HI,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema},
            },
        },
        "response_format.json_schema.schema",
    ),
    "completions": (
        completions.parse,
        lambda schema: {
            "prompt": "hi",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema},
            },
        },
        "response_format.json_schema.schema",
    ),
    "messages": (
        anthropic.parse,
        lambda schema: {
            "max_tokens": 8,
            "messages": HI,
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        },
        "output_config.format.schema",
    ),
    "responses": (
        responses.parse,
        lambda schema: {
            "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "x", "schema": schema}},
        },
        "text.format.schema",
    ),
    "ollama-chat": (
        ollama_chat.parse,
        lambda schema: {"model": "m", "messages": HI, "format": schema},
        "format",
    ),
    "ollama-generate": (
        ollama_generate.parse,
        lambda schema: {"model": "m", "prompt": "hi", "format": schema},
        "format",
    ),
}


def refused(parse, body) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as raised:
        parse(body, LIMITS)
    return raised.value


@pytest.mark.parametrize("dialect", sorted(TOOLS))
def test_as_many_tools_as_allowed_each_as_large_as_allowed(dialect):
    parse, body, tool, _ = TOOLS[dialect]
    parsed = parse(body([tool("a", LARGEST), tool("b", SMALL)]), LIMITS)
    assert [offered["function"]["name"] for offered in parsed.request.tools] == ["a", "b"]


@pytest.mark.parametrize("dialect", sorted(TOOLS))
def test_one_tool_too_many(dialect):
    parse, body, tool, _ = TOOLS[dialect]
    error = refused(parse, body([tool(name, SMALL) for name in "abc"]))
    assert error.param == "tools" and "at most 2 tools, got 3" in error.message


def test_server_tools_count_among_the_tools():
    tools = [{"type": "web_search_20250305", "name": name} for name in "abc"]
    assert (
        refused(anthropic.parse, {"max_tokens": 8, "messages": HI, "tools": tools}).param == "tools"
    )
    assert (
        refused(responses.parse, {"input": "hi", "tools": [{"type": "web_search"}] * 3}).param
        == "tools"
    )


@pytest.mark.parametrize("dialect", sorted(TOOLS))
def test_a_tool_schema_too_large(dialect):
    parse, body, tool, where = TOOLS[dialect]
    error = refused(parse, body([tool("a", SMALL), tool("b", LARGE)]))
    assert error.param == where.format(i=1)
    assert "101 bytes" in error.message and "at most 100" in error.message


@pytest.mark.parametrize("dialect", sorted(FORMATS))
def test_a_format_schema_too_large(dialect):
    parse, body, where = FORMATS[dialect]
    assert parse(body(SMALL), LIMITS).request.response_format.schema == SMALL
    assert refused(parse, body(LARGE)).param == where


# what a server compiles that the proxy does not write itself: llama-server's own schema
# field (unread: sent on as it came) and server.cpp's grammar
COMPILED = {
    "chat-json_schema": (chat.parse, lambda value: {"messages": HI, "json_schema": value},
                         "json_schema"),
    "completions-json_schema": (completions.parse,
                                lambda value: {"prompt": "hi", "json_schema": value},
                                "json_schema"),
    "chat-grammar": (chat.parse, lambda value: {"messages": HI, "grammar": value}, "grammar"),
    "completions-grammar": (completions.parse, lambda value: {"prompt": "hi", "grammar": value},
                            "grammar"),
}  # fmt: skip


@pytest.mark.parametrize("field", sorted(COMPILED))
def test_what_a_server_compiles_is_bounded_as_a_schema_is(field):
    parse, body, name = COMPILED[field]
    small, large = (SMALL, LARGE) if name == "json_schema" else ("x" * 100, "x" * 101)
    assert parse(body(small), LIMITS)
    error = refused(parse, body(large))
    assert error.param == name and "101 bytes" in error.message and "at most 100" in error.message
