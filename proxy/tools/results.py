"""What the rest of the proxy knows of an MCP server's tools: each tool as listed, and a
call's result as text a model can read, bounded. Pure: the SDK's values in, plain ones out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass(frozen=True)
class ToolSpec:
    """One tool as its server lists it: what a model is offered."""

    name: str
    description: str = ""
    input_schema: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ToolResult:
    """A call's result: its text content joined, ``is_error`` when the tool said it failed
    (the model reads why), ``truncated`` when text was cut to the server's bound, and the
    pages it was drawn from (:class:`~proxy.core.tooluse.Source` values), where a search or
    a fetch made it."""

    text: str
    is_error: bool = False
    truncated: bool = False
    sources: tuple = ()


def tool_specs(tools: Iterable[Any]) -> tuple:
    """The SDK's ``Tool`` values as :class:`ToolSpec`."""
    return tuple(
        ToolSpec(tool.name, tool.description or "", dict(tool.input_schema or {})) for tool in tools
    )


def result_of(content: Iterable[Any], structured: Any, is_error: bool, cut: bool, bound: int):
    """A call's result: each block of ``content`` as text (a block that is not text named by
    its kind, never silently left out), or the ``structured`` content as JSON when there is
    no block; at most ``bound`` bytes of it, cut between characters. ``cut``: the reading
    already cut some of it."""
    parts = [_text(block) for block in content]
    if not parts and structured is not None:
        parts = [json.dumps(structured, ensure_ascii=False)]
    text = "\n".join(parts)
    encoded = text.encode("utf-8", "replace")  # a lone surrogate (JSON allows one) as "?"
    if len(encoded) <= bound:
        return ToolResult(encoded.decode("utf-8"), is_error, cut)
    return ToolResult(encoded[:bound].decode("utf-8", "ignore"), is_error, True)


def _text(block: Any) -> str:
    kind = getattr(block, "type", "")
    if kind == "text":
        return block.text
    resource = getattr(block, "resource", None)
    if kind == "resource" and isinstance(getattr(resource, "text", None), str):
        return resource.text
    if kind == "resource_link":
        return f"[a link to the resource {block.uri}]"
    mime = getattr(block, "mime_type", None) or getattr(resource, "mime_type", None)
    return f"[a block of {kind or 'unknown'} content{f' ({mime})' if mime else ''}, not text]"
