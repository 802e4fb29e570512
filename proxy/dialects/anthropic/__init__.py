"""Anthropic's Messages API (``POST /v1/messages``, ``/v1/messages/count_tokens``), both ways:
a :class:`~proxy.dialects.dialect.Dialect`.

Requests: ``system`` (a string or text blocks), ``messages`` of text, ``tool_use`` and
``tool_result`` blocks (earlier ``thinking`` blocks stay out of the prompt), custom tools with
their ``input_schema`` and ``tool_choice``. The MCP connector's ``mcp_servers`` and the
``web_search`` and ``web_fetch`` server tools are run by the gateway (:mod:`.hosted`); the
tools Anthropic's client runs (``bash`` and the like, which carry a dated ``type`` and no
schema) are left out and named in the answer's ``x-oai-proxy-left-out-tools`` header, as are
the server tools the gateway never runs (``code_execution``), where the model leaves those out
rather than refusing them. Images and other blocks a text model cannot read are a 400 naming
the block.

A system block that begins ``x-anthropic-billing-header:`` (Claude Code writes one first, and
its value changes between sessions) is left out of the prompt: left in, it would change the
prompt's first tokens, so no turn of another session could reuse the KV cache.

Answers: ``{id: "msg_…", type: "message", content: [thinking?, runs*, text?, tool_use*],
stop_reason, stop_sequence, usage}``; streams are Anthropic's event sequence, each event with
an ``event:`` line: ``message_start``, each block's ``content_block_start`` / ``_delta`` /
``_stop`` with indices from 0, ``message_delta``, ``message_stop``; ``ping`` while a model's
server starts; ``error`` when a stream fails after its first byte. Each hosted tool's run is
its call's block and its result's (:mod:`.runs`), streamed where it ran.
"""

from __future__ import annotations

import os

from proxy.core.headers import named
from proxy.dialects.anthropic.answer import error_body, render, render_count  # noqa: F401
from proxy.dialects.anthropic.request import parse  # noqa: F401 (the dialect's)
from proxy.dialects.anthropic.stream import MessagesStream
from proxy.dialects.dialect import Ask

LEFT_OUT_HEADER = "x-oai-proxy-left-out-tools"
patient = True  # Anthropic's clients expect pings while a slot is awaited, too


def new_id() -> str:
    return f"msg_{os.urandom(12).hex()}"


def stream(ask: Ask, id: str, model: str) -> MessagesStream:
    return MessagesStream(ask, id, model)


def headers(ask: Ask) -> dict:
    """The response header naming the server tools left out, when any were."""
    left_out = ask.notes.left_out
    return {LEFT_OUT_HEADER: named(left_out)} if left_out else {}
