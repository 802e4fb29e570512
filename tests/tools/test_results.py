"""A tool call's result as the text a model reads: every block told (one that is not text
by its kind), bounded to the server's bytes between characters, and marked when cut."""

from __future__ import annotations

from types import SimpleNamespace as Block

import mcp_types as types
import pytest

from proxy.tools.results import ToolResult, ToolSpec, result_of, tool_specs

TEXT = Block(type="text", text="hello")


@pytest.mark.parametrize(
    "content, structured, bound, cut, expected",
    [
        ([TEXT], None, 100, False, ToolResult("hello")),
        ([TEXT, Block(type="text", text="world")], None, 100, False, ToolResult("hello\nworld")),
        ([TEXT], None, 3, False, ToolResult("hel", truncated=True)),
        ([Block(type="text", text="é" * 4)], None, 5, False, ToolResult("éé", truncated=True)),
        ([Block(type="text", text="😀x")], None, 3, False, ToolResult("", truncated=True)),
        ([TEXT], None, 100, True, ToolResult("hello", truncated=True)),
        ([], {"sum": 3}, 100, False, ToolResult('{"sum": 3}')),
        ([TEXT], {"sum": 3}, 100, False, ToolResult("hello")),
        ([], None, 100, False, ToolResult("")),
        (
            [Block(type="image", data="AAAA", mime_type="image/png")],
            None,
            100,
            False,
            ToolResult("[a block of image content (image/png), not text]"),
        ),
        (
            [Block(type="resource", resource=Block(uri="file:///a", text="inside"))],
            None,
            100,
            False,
            ToolResult("inside"),
        ),
        (
            [Block(type="resource_link", uri="file:///b")],
            None,
            100,
            False,
            ToolResult("[a link to the resource file:///b]"),
        ),
        ([Block(type="text", text="a\ud800b")], None, 100, False, ToolResult("a?b")),
    ],
)
def test_a_result_as_text(content, structured, bound, cut, expected):
    assert result_of(content, structured, False, cut, bound) == expected


def test_an_error_the_tool_reports_is_a_result_the_model_reads():
    assert result_of([TEXT], None, True, False, 100) == ToolResult("hello", is_error=True)


def test_the_sdks_blocks_and_tools():
    content = [
        types.TextContent(type="text", text="a"),
        types.ImageContent(type="image", data="AAAA", mime_type="image/png"),
    ]
    assert result_of(content, None, False, False, 100).text == (
        "a\n[a block of image content (image/png), not text]"
    )
    tool = types.Tool(name="echo", description=None, input_schema={"type": "object"})
    assert tool_specs([tool]) == (ToolSpec("echo", "", {"type": "object"}),)
