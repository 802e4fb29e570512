"""The bounds every dialect shares: how many tools a request offers, and how large a schema
the server is to compile may be."""

from __future__ import annotations

import json

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.core.fields import (
    Fields,
    check_schema,
    function_tools,
    json_size,
    offered_tools,
    response_format,
    sized_schema,
    unreadable,
)
from proxy.core.types import ResponseFormat

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
SIZE = len(json.dumps(SCHEMA, separators=(",", ":")))  # 53


def tool(name: str = "f", parameters=SCHEMA) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def refused(call, *args, **kwargs) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as raised:
        call(*args, **kwargs)
    return raised.value


@pytest.mark.parametrize(
    ("tools", "most", "offered"), [(None, 2, 0), ([], 2, 0), ([{"name": "a"}, {"name": "b"}], 2, 2)]
)
def test_offered_tools(tools, most, offered):
    assert len(offered_tools(Fields({"tools": tools}), most)) == offered


@pytest.mark.parametrize(
    ("tools", "param"),
    [([{"name": "a"}] * 3, "tools"), ("web_search", "tools"), ([{"name": "a"}, "b"], "tools[1]")],
)
def test_offered_tools_refused(tools, param):
    assert refused(offered_tools, Fields({"tools": tools}), 2).param == param


def test_too_many_tools_are_refused_before_any_is_read():
    error = refused(offered_tools, Fields({"tools": [None] * 50_000}), 128)
    assert error.message == "'tools' may offer at most 128 tools, got 50000"


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({}, 2),
        (SCHEMA, SIZE),
        ({"enum": ["é"]}, len('{"enum":["é"]}'.encode())),
        ({"const": 2**70}, len('{"const":1180591620717411303424}')),  # wider than orjson takes
    ],
)
def test_json_size(value, size):
    assert json_size(value) == size


@pytest.mark.parametrize(("most", "accepted"), [(SIZE, True), (SIZE - 1, False)])
def test_sized_schema(most, accepted):
    fields = Fields({"format": SCHEMA})
    if accepted:
        assert sized_schema(fields, "format", SCHEMA, most) is SCHEMA
    else:
        error = refused(sized_schema, fields, "format", SCHEMA, most)
        assert error.param == "format" and f"{SIZE} bytes" in error.message


def test_a_large_schema_is_refused_before_jsonschema_reads_it(monkeypatch):
    monkeypatch.setattr(
        "jsonschema.validators.validator_for", lambda schema: pytest.fail("checked")
    )
    assert (
        refused(check_schema, Fields({"format": SCHEMA}), "format", SCHEMA, SIZE - 1).param
        == "format"
    )


@pytest.mark.parametrize(
    ("schema", "valid"),
    [
        ({"type": "array", "items": {"type": "integer"}}, True),
        ({"type": "array", "items": [{"type": "integer"}]}, True),  # draft 7's tuple
        ({"$schema": "https://json-schema.org/draft/2020-12/schema", "items": [{}]}, False),
        ({"type": 5}, False),
    ],
    ids=["newest", "tuple-items", "tuple-items-in-2020-12", "not-a-schema"],
)
def test_a_schema_is_read_by_the_newest_draft_or_draft_7(schema, valid):
    fields = Fields({"format": schema})
    if valid:
        check_schema(fields, "format", schema, SIZE)
    else:
        assert refused(check_schema, fields, "format", schema, SIZE).param == "format"


@pytest.mark.parametrize(
    ("tools", "most", "schema_size", "param"),
    [
        ([tool("a"), tool("b"), tool("c")], 2, SIZE, "tools"),
        (
            [tool("a"), tool("b", {**SCHEMA, "description": "long"})],
            2,
            SIZE,
            "tools[1].function.parameters",
        ),
        ([tool("a", [])], 2, SIZE, "tools[0].function.parameters"),
    ],
)
def test_function_tools_refused(tools, most, schema_size, param):
    error = refused(function_tools, Fields({"tools": tools}), most, schema_size)
    assert error.param == param


def test_function_tools_within_the_bounds():
    tools = [tool("a"), tool("b"), tool("c", None)]
    assert function_tools(Fields({"tools": tools}), 3, SIZE) == tuple(tools)


@pytest.mark.parametrize(
    ("most", "expected"),
    [
        (SIZE, ResponseFormat("json_schema", SCHEMA)),
        (SIZE - 1, "response_format.json_schema.schema"),
    ],
)
def test_a_response_format_schema_is_sized(most, expected):
    options = Fields({"type": "json_schema", "json_schema": {"schema": SCHEMA}}, "response_format.")
    schema_at = Fields(options.raw("json_schema"), "response_format.json_schema.")
    if isinstance(expected, str):
        assert refused(response_format, "json_schema", options, schema_at, most).param == expected
    else:
        assert response_format("json_schema", options, schema_at, most) == expected


@pytest.mark.parametrize(
    "exc, says",
    [
        (RecursionError(), "it is nested too deeply"),
        (LookupError("urn:nowhere"), "a $ref in it cannot be resolved"),
        (TypeError("unhashable"), "it cannot be read as one"),
    ],
)
def test_why_a_schema_cannot_be_read_is_said_in_words(exc, says):
    assert unreadable(exc) == says
