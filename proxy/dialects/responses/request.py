"""Responses requests: a ``/v1/responses`` body as an :class:`Ask`, its input items checked
and each given an id, as OpenAI gives them (see the package's docstring for what is read and
what is left out). The items become chat messages in ``items.py``; the hosted tools become
the gateway's uses in ``hosted.py``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from proxy.core.fields import (
    Fields,
    chosen_function,
    effort,
    offered_tools,
    response_format,
    sized_schema,
    template_kwargs,
)
from proxy.core.types import (
    GenerationRequest,
    ResponseFormat,
    Sampling,
    ToolChoice,
    Verbatim,
    amended,
    function_tool,
)
from proxy.dialects.dialect import Ask, Limits, image_at
from proxy.dialects.responses.hosted import SEARCH, mcp_use, search_use
from proxy.dialects.responses.items import approvals_of, messages_with

API = "responses"  # a body of this API, as a server of it takes it whole (Verbatim)
# llama-server's own asks of its stream: its timings on each piece, the prompt's progress
ENGINE_TELLS = ("timings_per_token", "return_progress")
ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text", "text", "refusal")
# items of tools only OpenAI runs: they can only come from another server's answers
FOREIGN_ITEMS = (
    "web_search_call",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "local_shell_call",
    "local_shell_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "image_generation_call",
    "code_interpreter_call",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "compaction",
)
AUTO = ToolChoice()
# tool types OpenAI's servers run themselves (a dated type begins as its tool's does); the
# client runs the others (custom, namespace, local_shell…), which a model here is not offered
HOSTED = (
    "web_search",
    "file_search",
    "code_interpreter",
    "computer_use",
    "image_generation",
    "mcp",
)


@dataclass(frozen=True)
class ResponsesNotes:
    """What a response is rendered and kept by (an :class:`Ask`'s notes): the items it came
    as, and the request fields the response object repeats."""

    input_items: tuple  # this request's input, as items with ids (what a store keeps)
    store: bool = True
    previous_response_id: Optional[str] = None
    instructions: Optional[str] = None
    summary: bool = False  # a reasoning summary was asked for
    prompt_cache_key: Optional[str] = None
    echo: dict = field(default_factory=dict)  # request fields the response object repeats


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(12).hex()}"


def parse(body: Any, limits: Limits = Limits(), *, counting: bool = False) -> Ask:
    """Read a ``/v1/responses`` body (``counting``: an ``input_tokens`` body)."""
    fields = Fields(body)
    items = _input_items(fields, limits)
    instructions = fields.string("instructions")
    tools, not_offered, hosted, uses = _tools(fields, limits)
    choice, offered = _tool_choice(fields, tools)
    parallel = fields.boolean("parallel_tool_calls")
    response_format = _text_format(fields, limits)
    summary, effort_asked = _reasoning(fields)
    previous = fields.string("previous_response_id") or None
    cache_key = fields.string("prompt_cache_key") or None
    for name in ("user", "safety_identifier"):
        fields.string(name)
    metadata = fields.raw("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(value, str) for value in metadata.values())
    ):
        raise fields.fail("metadata", "must be an object of strings")
    max_tokens = fields.integer("max_output_tokens", 1)
    told = {name: fields.boolean(name) for name in ENGINE_TELLS if fields.raw(name) is not None}
    request = GenerationRequest(
        model=fields.string("model") or None,
        messages=tuple(messages_with(instructions, items)),
        max_tokens=max_tokens,
        sampling=Sampling(
            temperature=fields.number("temperature", 0, 2), top_p=fields.number("top_p", 0, 1)
        ),
        response_format=response_format,
        tools=tools if offered else (),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        template_kwargs=template_kwargs(fields, effort=effort_asked),
        uses=uses if offered else (),
        approvals=() if previous else approvals_of(items, items),
        unread=told,
    )
    store = fields.boolean("store")
    if store is False and previous is None and not request.uses and not counting:
        # nothing of it for the proxy to keep or run: a server of this API takes it whole
        request = amended(request, verbatim=Verbatim(API, body))
    echo = {
        "instructions": instructions,
        "max_output_tokens": max_tokens,
        "parallel_tool_calls": parallel is not False,
        "temperature": request.sampling.temperature,
        "top_p": request.sampling.top_p,
        "tools": fields.raw("tools") or [],
        "tool_choice": fields.raw("tool_choice") or "auto",
        "metadata": metadata or {},
        "user": fields.raw("user"),
        "prompt_cache_key": cache_key,
        "reasoning": fields.raw("reasoning") or {"effort": None, "summary": None},
        "text": fields.raw("text") or {"format": {"type": "text"}},
    }
    notes = ResponsesNotes(
        tuple(items),
        store=store is not False and not counting,
        previous_response_id=previous,
        instructions=instructions,
        summary=summary,
        prompt_cache_key=cache_key,
        echo=echo,
    )
    return Ask(
        (request,),
        stream=bool(fields.boolean("stream")),
        notes=notes,
        not_run=hosted,
        not_offered=not_offered,
    )


def _input_items(fields: Fields, limits: Limits) -> list:
    raw = fields.raw("input")
    if isinstance(raw, str):
        return [_message_item("user", [{"type": "input_text", "text": raw}])]
    if not isinstance(raw, list) or not raw:
        raise fields.fail("input", "must be a string or a non-empty list of items")
    return [_input_item(Fields(item, f"input[{i}]."), limits) for i, item in enumerate(raw)]


def _message_item(role: str, content: list, id: Optional[str] = None) -> dict:
    return {"type": "message", "id": id or new_id("msg"), "role": role, "content": content}


def _input_item(fields: Fields, limits: Limits) -> dict:
    """One input item, checked, with an id (as OpenAI gives each)."""
    kind = fields.string("type") or ("message" if "role" in fields.body else None)
    if kind == "message":
        role = fields.string("role")
        if role not in ROLES:
            raise fields.fail("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        content = fields.raw("content")
        if isinstance(content, str):
            parts = [
                {"type": "input_text" if role != "assistant" else "output_text", "text": content}
            ]
        elif isinstance(content, list):
            parts = [
                _part(Fields(part, f"{fields.prefix}content[{j}]."), limits)
                for j, part in enumerate(content)
            ]
        else:
            raise fields.fail("content", "must be a string or a list of content parts")
        return _message_item(role, parts, fields.string("id"))
    if kind == "function_call":
        arguments = fields.string("arguments")
        if arguments is None:
            raise fields.fail("arguments", "is required")
        return {
            "type": "function_call",
            "id": fields.string("id") or new_id("fc"),
            "call_id": fields.required("call_id"),
            "name": fields.required("name"),
            "arguments": arguments,
        }
    if kind == "function_call_output":
        return {
            "type": "function_call_output",
            "id": fields.string("id") or new_id("fco"),
            "call_id": fields.required("call_id"),
            "output": _output(fields, limits),
        }
    if kind == "reasoning":
        return {
            "type": kind,
            "id": fields.string("id") or new_id("rs"),
            "summary": _thought_parts(fields, "summary", "summary_text"),
            "content": _thought_parts(fields, "content", "reasoning_text"),
        }
    if kind == "mcp_call":
        item = _mcp_item(fields, kind, "mcp")
        item["output"], item["error"] = fields.string("output"), fields.string("error")
        item["approval_request_id"] = fields.string("approval_request_id")
        return item
    if kind == "mcp_approval_request":
        return _mcp_item(fields, kind, "mcpr")
    if kind == "mcp_approval_response":
        approve = fields.boolean("approve")
        if approve is None:
            raise fields.fail("approve", "is required: true or false")
        return {
            "type": kind,
            "id": fields.string("id") or new_id("mcpa"),
            "approval_request_id": fields.required("approval_request_id"),
            "approve": approve,
            "reason": fields.string("reason"),
        }
    if kind == "mcp_list_tools":
        return {
            "type": kind,
            "id": fields.string("id") or new_id("mcpl"),
            "server_label": fields.string("server_label"),
        }
    if kind in FOREIGN_ITEMS or kind == "web_search_call":
        return {"type": kind, "id": fields.string("id") or new_id("rs")}
    raise fields.fail(
        "type",
        f"{kind!r} is not an input item this proxy can read; send "
        f"message, function_call or function_call_output items",
    )


def _mcp_item(fields: Fields, kind: str, prefix: str) -> dict:
    """A call of a hosted MCP tool, run or asked approval for: whose, which and with what."""
    return {
        "type": kind,
        "id": fields.string("id") or new_id(prefix),
        "server_label": fields.required("server_label"),
        "name": fields.required("name"),
        "arguments": fields.string("arguments") or "{}",
    }


def _thought_parts(fields: Fields, name: str, kind: str) -> list:
    """A reasoning item's ``summary`` or ``content`` parts of ``kind`` (others, and
    ``encrypted_content``, are another server's and stay out)."""
    return [
        {"type": kind, "text": part.text("text")}
        for part in fields.objects(name)
        if part.string("type") == kind
    ]


def _part(fields: Fields, limits: Limits) -> dict:
    """A content part; an ``input_image``'s image is read now, kept with it as ``image``."""
    kind = fields.string("type")
    if kind in TEXT_PARTS:
        name = "refusal" if kind == "refusal" else "text"
        return {"type": kind, name: fields.text(name)}
    if kind == "input_image":
        if fields.raw("image_url") is None and fields.raw("file_id") is not None:
            raise fields.fail(
                "file_id", "names a file this proxy does not keep; send the image as image_url"
            )
        return {
            "type": kind,
            "detail": fields.string("detail") or "auto",
            "image": image_at(fields.required("image_url"), f"{fields.prefix}image_url", limits),
        }
    raise fields.fail(
        "type", f"{kind!r} is not a part this proxy can read; send input_text or input_image"
    )


def _output(fields: Fields, limits: Limits):
    """A call's output: text, or text and image parts."""
    output = fields.raw("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return [
            _part(Fields(part, f"{fields.prefix}output[{j}]."), limits)
            for j, part in enumerate(output)
        ]
    raise fields.fail("output", "must be a string or a list of input_text and input_image parts")


def _tools(fields: Fields, limits: Limits) -> tuple:
    """Function tools as the proxy holds them, the types of the others, left out, of those
    the hosted ones the gateway runs for no model, and the uses of the servers of tools it
    may run (:class:`ToolUse`: MCP servers, the web search)."""
    tools, not_offered, hosted, uses = [], [], [], []
    for tool in offered_tools(fields, limits.max_tools):
        kind = tool.string("type")
        if kind == "mcp":
            uses.append(mcp_use(tool))
            continue
        if kind is not None and kind.startswith(SEARCH):
            uses.append(search_use(tool))
            continue
        if kind != "function":
            not_offered.append(kind or "?")
            if kind is not None and kind.startswith(HOSTED):
                hosted.append(kind)
            continue
        parameters = tool.raw("parameters") or {"type": "object"}
        if not isinstance(parameters, dict):
            raise tool.fail("parameters", "must be a JSON Schema object")
        sized_schema(tool, "parameters", parameters, limits.max_schema_size)
        tool.boolean("strict")
        tools.append(function_tool(tool.required("name"), parameters, tool.string("description")))
    return tuple(tools), tuple(not_offered), tuple(hosted), tuple(uses)


def _tool_choice(fields: Fields, tools: tuple) -> tuple:
    """``(choice, offered)``: ``none`` offers the model no tools."""
    raw = fields.raw("tool_choice")
    if raw is None or raw == "auto":
        return AUTO, True
    if raw == "none":
        return AUTO, False
    if raw == "required" or isinstance(raw, dict):
        if not tools:
            raise fields.fail("tool_choice", "needs function tools to choose from")
        if raw == "required":
            return ToolChoice("required"), True
        options = Fields(raw, "tool_choice.")
        if options.string("type") == "function":
            return chosen_function(options, tools), True
    raise fields.fail(
        "tool_choice", 'must be auto, required, none or {"type": "function", "name": …}'
    )


def _text_format(fields: Fields, limits: Limits) -> Optional[ResponseFormat]:
    text = fields.object("text")
    options = text.object("format") if text is not None else None
    if options is None:
        return None
    return response_format(options.string("type"), options, options, limits.max_schema_size)


def _reasoning(fields: Fields) -> tuple:
    """``(summary?, effort)``: whether a summary of the reasoning is asked for, and how hard
    the model is to think (its template's ``reasoning_effort``, where it reads one)."""
    options = fields.object("reasoning")
    if options is None:
        return False, None
    summary = options.string("summary")
    return summary is not None and summary != "none", effort(options, "effort")
