"""Responses answers: the ``response`` object in any state, its output items, usage, and the
bodies of the routes over stored responses."""

from __future__ import annotations

import json
import time
from typing import Optional, Sequence

from proxy.core.answers import Completion, Usage
from proxy.core.errors import ProxyError
from proxy.core.tooluse import ToolListing, ToolRun, cited, sources_of
from proxy.dialects.dialect import Ask
from proxy.dialects.responses.request import ResponsesNotes, new_id


def response_object(
    notes: ResponsesNotes,
    id: str,
    model: str,
    created: int,
    output: list,
    usage: Optional[Usage],
    status: str,
    error: Optional[ProxyError] = None,
) -> dict:
    """The ``response`` object, in any state."""
    return {
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None
        if error is None
        else {"code": error.code or error.type, "message": error.message},
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": model,
        "output": output,
        "previous_response_id": notes.previous_response_id,
        "store": notes.store,
        "truncation": "disabled",
        "usage": None if usage is None else usage_body(usage),
        **notes.echo,
    }


def render(ask: Ask, id: str, model: str, completions: Sequence[Completion]) -> dict:
    """A whole response: the upstream's own, where it wrote one in this API (the model
    named as the client asked for it)."""
    (completion,) = completions
    if completion.verbatim is not None:
        return {**completion.verbatim, "model": model}
    output = [item for step in completion.runs for item in run_items(step)]
    if completion.reasoning:
        output.append(reasoning_item(new_id("rs"), completion.reasoning, ask.notes.summary))
    status = status_of(completion.finish_reason)
    waiting = any(isinstance(step, ToolRun) and step.pending for step in completion.runs)
    if completion.text or not (completion.tool_calls or waiting):
        sources = sources_of(completion.runs)
        output.append(
            message_item(
                new_id("msg"), completion.text, status, citations(completion.text, sources)
            )
        )
    output += [
        call_item(new_id("fc"), call.id, call.name, call.arguments)
        for call in completion.tool_calls
    ]
    return response_object(ask.notes, id, model, int(time.time()), output, completion.usage, status)


def status_of(finish_reason: str) -> str:
    return "incomplete" if finish_reason == "length" else "completed"


def reasoning_item(id: str, text: str, summary: bool, status: str = "completed") -> dict:
    return {
        "id": id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if summary and text else [],
        "content": [{"type": "reasoning_text", "text": text}] if text else [],
        "encrypted_content": None,
        "status": status,
    }


def message_item(
    id: str, text: str, status: str = "completed", annotations: Sequence[dict] = ()
) -> dict:
    return {
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [
            {"type": "output_text", "text": text, "annotations": list(annotations), "logprobs": []}
        ]
        if status != "in_progress"
        else [],
    }


def citations(text: str, sources: Sequence) -> list:
    """A ``url_citation`` where the text names a source's URL."""
    return [
        {
            "type": "url_citation",
            "start_index": start,
            "end_index": end,
            "url": source.url,
            "title": source.title,
        }
        for start, end, source in cited(text, sources)
    ]


def run_items(step, status: str = "") -> list:
    """The output items of a listing or a run, as OpenAI's servers write theirs (``status``:
    ``in_progress`` for the item a stream adds first)."""
    if isinstance(step, ToolListing):
        if step.kind != "mcp":
            return []  # the web search's tools are listed nowhere
        return [
            {
                "id": new_id("mcpl"),
                "type": "mcp_list_tools",
                "server_label": step.label,
                "tools": [
                    {
                        "name": name,
                        "description": description,
                        "input_schema": schema,
                        "annotations": None,
                    }
                    for name, description, schema in step.tools
                ]
                if status != "in_progress"
                else [],
                "error": step.error or None,
            }
        ]
    if step.kind != "mcp":
        return [search_item(step, status)]
    if step.pending:
        return [
            {
                "id": step.approval_id,
                "type": "mcp_approval_request",
                "server_label": step.label,
                "name": step.tool,
                "arguments": step.arguments,
            }
        ]
    done = status != "in_progress"
    return [
        {
            "id": new_id("mcp"),
            "type": "mcp_call",
            "status": status or ("failed" if step.error else "completed"),
            "server_label": step.label,
            "name": step.tool,
            "arguments": step.arguments if done else "",
            "output": step.output if done and not step.error else None,
            "error": step.error if done and step.error else None,
            "approval_request_id": step.approval_id or None,
        }
    ]


def search_item(run: ToolRun, status: str = "") -> dict:
    """A run of the web search as a ``web_search_call``: its query and what it found, or
    the page it opened."""
    try:
        arguments = json.loads(run.arguments or "{}")
    except ValueError:
        arguments = {}
    arguments = arguments if isinstance(arguments, dict) else {}
    if run.tool == "web_fetch":
        action = {"type": "open_page", "url": arguments.get("url")}
    else:
        action = {
            "type": "search",
            "query": arguments.get("query"),
            "sources": [{"type": "url", "url": source.url} for source in run.sources],
        }
    return {
        "id": new_id("ws"),
        "type": "web_search_call",
        "status": status or ("failed" if run.error else "completed"),
        "action": action,
    }


def call_item(id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict:
    return {
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def usage_body(usage: Usage) -> dict:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens or 0,
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def render_count(tokens: int) -> dict:
    return {"object": "response.input_tokens", "input_tokens": tokens}


def render_deleted(id: str) -> dict:
    return {"id": id, "object": "response.deleted", "deleted": True}


def render_items(items: Sequence[dict], has_more: bool) -> dict:
    return {
        "object": "list",
        "data": list(items),
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }
