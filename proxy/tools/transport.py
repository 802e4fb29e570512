"""What both ways of reaching an MCP server share: a line the server wrote, parsed into
the SDK's JSON-RPC message (marked when the cutter cut its text), and the link a
session keeps on its transport: why it ended, and the moment it did."""

from __future__ import annotations

import json
from typing import Any, Union

import anyio
from mcp.shared.message import SessionMessage
from mcp_types import jsonrpc_message_adapter
from pydantic import ValidationError

CUT = "oai-proxy/cut"  # in a result's _meta: the reading cut some of its text


class Link:
    """A transport as its session sees it: ``why`` it failed a message or ended (empty
    while it has not), and ``ended``, set when it can carry nothing more."""

    def __init__(self) -> None:
        self.why = ""
        self.ended = anyio.Event()

    def end(self, why: str) -> None:
        self.why = self.why or why
        self.ended.set()


def message_of(line: bytes, cut: bool) -> Union[SessionMessage, Exception]:
    """One line as the SDK's message (a line that is none, as the error the session is
    told); a result some of whose text was cut says so in its ``_meta``."""
    try:
        return SessionMessage(
            jsonrpc_message_adapter.validate_json(marked(line) if cut else line, by_name=False)
        )
    except (ValidationError, ValueError) as exc:
        return exc


def marked(line: bytes) -> bytes:
    """A JSON-RPC message (or an SSE ``data:`` line of one) whose result lost text to the
    cutter, with ``_meta`` saying so; any other line as it is."""
    prefix = b""
    if line.startswith(b"data:"):
        prefix, line = b"data: ", line[len(b"data:") :]
    try:
        message: Any = json.loads(line)
    except ValueError:
        return prefix + line
    result = message.get("result") if isinstance(message, dict) else None
    if not isinstance(result, dict) or not isinstance(result.setdefault("_meta", {}), dict):
        return prefix + line
    result["_meta"][CUT] = True
    return prefix + json.dumps(message, ensure_ascii=False).encode()
