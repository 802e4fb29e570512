"""The hosted tools the gateway ran for an answer, as the blocks Anthropic's servers write for
theirs: a call of an MCP server's tool as ``mcp_tool_use`` and ``mcp_tool_result``, a web
search or fetch as ``server_tool_use`` and ``web_search_tool_result`` or
``web_fetch_tool_result``; and the searches and fetches counted in the usage
(``server_tool_use``). Pure.

A listing of a server's tools has no block in Messages, and is not told. Nothing here is
sealed as Anthropic seals it: a search result's ``encrypted_content`` is empty, and the
answer's text carries no ``citations``: which words of it a page supports is the model's to
say, and it says it in its words; the pages it read are in the result blocks.

The Messages API asks no approval of a call: a call left pending one (``pending``, which a
Messages request never asks for) is told as a failed call.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional, Sequence

from proxy.core.tooluse import ToolRun
from proxy.dialects.anthropic.hosted import WEB_TOOLS

PENDING = "this call waits for an approval, which the Messages API cannot give"
CODES = ("max_uses_exceeded",)  # the codes of a run not run that Anthropic's servers answer too


def is_server_tool(run: ToolRun) -> bool:
    """Whether ``run`` is of the web search's tools, which Anthropic's own servers run (the
    rest are an MCP server's)."""
    return run.kind in WEB_TOOLS and run.tool in WEB_TOOLS


def blocks(run: ToolRun, n: int) -> tuple:
    """``(call, result)``: the blocks of ``run``, the ``n``-th run of its answer (which its
    blocks' id tells apart from the others)."""
    arguments = _arguments(run.arguments)
    input = arguments if isinstance(arguments, dict) else {}
    if is_server_tool(run):
        id = _id("srvtoolu_", run, n)
        call = {"type": "server_tool_use", "id": id, "name": run.tool, "input": input}
        if run.tool == "web_search":
            return call, _search_result(id, run, arguments)
        return call, _fetch_result(id, run, input, arguments)
    id = _id("mcptoolu_", run, n)
    call = {
        "type": "mcp_tool_use",
        "id": id,
        "name": run.tool,
        "server_name": run.label,
        "input": input,
    }
    failed = bool(run.error) or run.pending
    result = {
        "type": "mcp_tool_result",
        "tool_use_id": id,
        "is_error": failed,
        "content": [
            {"type": "text", "text": (PENDING if run.pending else run.error or run.output)}
        ],
    }
    return call, result


def server_usage(runs: Sequence) -> Optional[dict]:
    """The searches and fetches the gateway made for an answer (``usage.server_tool_use``),
    when it made any."""
    made = [run.tool for run in runs if is_server_tool(run) and not run.pending]
    if not made:
        return None
    return {
        "web_search_requests": made.count("web_search"),
        "web_fetch_requests": made.count("web_fetch"),
    }


def _search_result(id: str, run: ToolRun, arguments: object) -> dict:
    if run.error or run.pending:
        content: object = {
            "type": "web_search_tool_result_error",
            "error_code": _error_code(arguments, run),
        }
    else:
        content = [
            {
                "type": "web_search_result",
                "url": source.url,
                "title": source.title,
                "encrypted_content": "",
                "page_age": None,
            }
            for source in run.sources
        ]
    return {"type": "web_search_tool_result", "tool_use_id": id, "content": content}


def _fetch_result(id: str, run: ToolRun, input: dict, arguments: object) -> dict:
    if run.error or run.pending:
        content = {"type": "web_fetch_tool_result_error", "error_code": _error_code(arguments, run)}
    else:
        page = run.sources[0] if run.sources else None
        url = page.url if page is not None else input.get("url")
        content = {
            "type": "web_fetch_result",
            "url": url if isinstance(url, str) else "",
            "content": {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": run.output},
                "title": (page.title or None) if page is not None else None,
            },
            "retrieved_at": None,
        }
    return {"type": "web_fetch_tool_result", "tool_use_id": id, "content": content}


def _error_code(arguments: object, run: ToolRun) -> str:
    """Anthropic's code for a failed search or fetch: its uses were used up, the model's
    arguments were no JSON object, or the tool failed (why is the model's to read, in its
    result)."""
    if run.code in CODES:
        return run.code
    return "unavailable" if isinstance(arguments, dict) else "invalid_tool_input"


def _arguments(text: str) -> object:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return None


def _id(prefix: str, run: ToolRun, n: int) -> str:
    """A block's id, as Anthropic writes them: the same for a run whole or streamed, and
    one of its own for each run of an answer (whose call ids a backend may repeat)."""
    digest = hashlib.blake2b(f"{n}\0{run.id}".encode("utf-8", "surrogatepass"), digest_size=12)
    return prefix + digest.hexdigest()
