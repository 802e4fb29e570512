"""OpenAI's Responses API (``POST /v1/responses`` and its stored responses), both ways:
a :class:`~proxy.dialects.dialect.Dialect`.

Requests: ``input`` as a string or items (``message`` with ``input_text`` / ``output_text``
parts, ``function_call``, ``function_call_output``; earlier ``reasoning`` items stay out of
the prompt), ``instructions``, ``function`` tools and ``tool_choice``, ``text.format``
(``json_schema`` through the structured-output compiler), ``max_output_tokens``. Hosted tools
the gateway runs: ``mcp`` (one of its MCP servers by its ``server_label``, with
``allowed_tools`` and ``require_approval``, answered by ``mcp_approval_response`` items) and
``web_search``; other hosted types are refused by name unless the model leaves them out.
Tools the client runs that a model here is not offered (``local_shell``, ``custom``,
``namespace``…) are left out and named in the answer's ``x-oai-proxy-left-out-tools`` header.

Answers: the ``response`` object, ``status`` ``completed`` or ``incomplete`` (the token limit),
its ``output`` a ``reasoning`` item (the thoughts, when the model wrote some; as its
``summary`` too when one is asked for: a local model writes no summary of its own), a
``message`` with ``output_text`` (``url_citation`` annotations where it names a page the web
search found), and ``function_call`` items; before them, the gateway's work on hosted tools:
``mcp_list_tools``, ``mcp_call``, ``mcp_approval_request`` and ``web_search_call`` items.
Streams are the full event sequence, each event typed and numbered (``sequence_number``)
with an ``event:`` line, from ``response.created`` to ``response.completed`` (or
``response.incomplete``, or ``response.failed`` when the stream fails after its first byte).
"""

from __future__ import annotations

from proxy.dialects.dialect import Ask
from proxy.dialects.openai.answer import error_body  # noqa: F401 (the dialect's)
from proxy.dialects.responses.answer import (  # noqa: F401 (the dialect's)
    render,  # noqa: F401
    render_count,  # noqa: F401
    render_deleted,  # noqa: F401
    render_items,  # noqa: F401
)
from proxy.dialects.responses.items import continuing, kept  # noqa: F401 (the dialect's)
from proxy.dialects.responses.request import new_id as new_item_id
from proxy.dialects.responses.request import parse  # noqa: F401 (the dialect's)
from proxy.dialects.responses.stream import ResponsesStream

patient = False  # a stream keeps its client company only while a server starts


def new_id() -> str:
    return new_item_id("resp")


def stream(ask: Ask, id: str, model: str) -> ResponsesStream:
    return ResponsesStream(ask, id, model)


def headers(ask: Ask) -> dict:
    return {}
