"""A tool call's arguments checked against the tool's input schema before the call: a
model's mistake named by its field, a server's broken schema told as the server's."""

from __future__ import annotations

import pytest

from proxy.core.errors import ToolArgumentsError, ToolServerError
from proxy.tools.arguments import checker

SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "lines": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "options": {
            "type": "object",
            "properties": {"mode": {"enum": ["r", "w"]}},
            "required": ["mode"],
        },
    },
    "required": ["path"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    "arguments", [{"path": "a"}, {"path": "a", "lines": [0, 3], "options": {"mode": "r"}}]
)
def test_arguments_that_fit_pass(arguments):
    checker("fs", "read", SCHEMA)(arguments)


@pytest.mark.parametrize(
    "arguments, field, says",
    [
        ({}, "arguments.path", "is required"),
        ({"path": 3}, "arguments.path", "3 is not of type 'string'"),
        ({"path": "a", "lines": [1, -1]}, "arguments.lines[1]", "less than the minimum"),
        ({"path": "a", "options": {}}, "arguments.options.mode", "is required"),
        ({"path": "a", "options": {"mode": "x"}}, "arguments.options.mode", "is not one of"),
        ({"path": "a", "extra": 1}, "arguments", "'extra' was unexpected"),
        ([], "arguments", "must be an object, got list"),
        ("a", "arguments", "must be an object, got str"),
        ({"path": "x" * 1000, "lines": "y" * 1000}, "arguments.lines", "…"),
        ({"path": "a", "lines": "y" * 1000}, "arguments.lines", "y…y"),
        ({"path": "a", "lines": "y" * 1000}, "arguments.lines", "' is not of type 'array'"),
    ],
)
def test_a_mistake_is_named_by_its_field(arguments, field, says):
    with pytest.raises(ToolArgumentsError) as error:
        checker("fs", "read", SCHEMA)(arguments)
    assert error.value.param == field and error.value.status == 400
    assert says in error.value.message and "'read'" in error.value.message
    assert len(error.value.message) < 500


def test_the_schemas_own_draft_is_honoured():
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"x": {"items": [{"type": "string"}]}},  # a tuple, in draft 7
    }
    with pytest.raises(ToolArgumentsError) as error:
        checker("s", "t", draft7)({"x": [1]})
    assert error.value.param == "arguments.x[0]"


@pytest.mark.parametrize(
    "schema", [{"type": "no-such-type"}, {"properties": {"a": {"minimum": "ten"}}}]
)
def test_a_broken_schema_is_the_servers_mistake(schema):
    with pytest.raises(ToolServerError, match="'t' of the MCP server 's' lists an input schema"):
        checker("s", "t", schema)({})


def test_a_reference_is_never_fetched():
    remote = {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/schema"}}}
    with pytest.raises(ToolServerError, match="cannot be checked"):
        checker("s", "t", remote)({"a": 1})
