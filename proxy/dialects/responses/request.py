"""Responses requests: a ``/v1/responses`` body as an :class:`Ask`, and its input items as
chat messages (see the package's docstring for what is read and what is left out)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Sequence

from proxy.config.catalog import WEB
from proxy.core.errors import InvalidRequestError
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
    Approval,
    GenerationRequest,
    Message,
    ResponseFormat,
    Sampling,
    ToolCall,
    ToolChoice,
    ToolUse,
    function_tool,
)
from proxy.dialects.dialect import Ask, Content, Limits, image_at

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
SEARCH = ("web_search", "web_search_preview")  # the web search's types, dated ones as these begin
APPROVAL = ("always", "never")
IMAGE_NOT_KEPT = "(an image, not kept)"  # an earlier response's image, whose bytes are gone


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
    tools, left_out, hosted, uses = _tools(fields, limits)
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
    request = GenerationRequest(
        model=fields.string("model") or None,
        messages=tuple(_instructions(instructions) + messages_of(items)),
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
    )
    store = fields.boolean("store")
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
        left_out=left_out,
    )


def continuing(ask: Ask, history: Sequence[dict]) -> Ask:
    """``ask`` after the items of the conversation it continues (its instructions first:
    those of earlier responses are not carried over)."""
    notes = ask.notes
    items = [*history, *notes.input_items]
    messages = _instructions(notes.instructions) + messages_of(items)
    approvals = approvals_of(items, notes.input_items)
    return ask.amended(
        lambda request: replace(request, messages=tuple(messages), approvals=approvals)
    )


def _instructions(text: Optional[str]) -> list:
    return [Message("system", text)] if text else []


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


def approvals_of(items: Sequence[dict], answers: Sequence[dict]) -> tuple:
    """The client's word on each call it was asked to approve and that has not run yet: an
    approval response of ``answers`` (this request's input), with the request it answers
    (an item of the conversation, ``items``)."""
    asked = {item["id"]: item for item in items if item["type"] == "mcp_approval_request"}
    ran = {item.get("approval_request_id") for item in items if item["type"] == "mcp_call"}
    approvals = []
    for item in answers:
        if item["type"] != "mcp_approval_response" or item["approval_request_id"] in ran:
            continue
        request = asked.get(item["approval_request_id"])
        if request is None:
            raise InvalidRequestError(
                f"the approval response {item['id']!r} answers {item['approval_request_id']!r}, "
                f"which is no mcp_approval_request of this conversation",
                param="input",
            )
        approvals.append(
            Approval(
                request["id"],
                request["server_label"],
                request["name"],
                request["arguments"],
                item["approve"],
                item["reason"] or "",
            )
        )
    return tuple(approvals)


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


def kept(items: Sequence[dict]) -> list:
    """``items`` as a store keeps them: each image a placeholder, never its bytes or URL."""
    return [
        {
            **item,
            **{
                name: [_kept_part(part) for part in item[name]]
                for name in ("content", "output")
                if isinstance(item.get(name), list)
            },
        }
        for item in items
    ]


def _kept_part(part: dict) -> dict:
    if part.get("type") != "input_image":
        return part
    return {
        "type": "input_image",
        "detail": part.get("detail", "auto"),
        "image_url": None,
        "file_id": None,
    }


def _content(parts: Sequence[dict]) -> Content:
    """Parts as one message's text and images; a kept image, whose bytes are gone, as a
    word that says so."""
    content = Content(Limits())
    for part in parts:
        if "image" in part:
            content.add_image(part["image"])
        elif part.get("type") == "input_image":
            content.add_text(IMAGE_NOT_KEPT)
        else:
            content.add_text(part.get("text", part.get("refusal", "")))
    return content


def messages_of(items: Sequence[dict]) -> list:
    """Checked items as chat messages: an assistant's reasoning, text and the calls after it
    become one assistant message, as chat templates expect; foreign items stay out."""
    messages: list = []
    thoughts = ""  # a reasoning item's text, for the assistant turn it begins
    for item in items:
        kind = item["type"]
        last = messages[-1] if messages else None
        if kind == "reasoning":
            thoughts = reasoning_text(item)
        elif kind == "message":
            content = _content(item["content"])
            messages.append(
                Message(
                    item["role"],
                    content.text,
                    reasoning=thoughts if item["role"] == "assistant" else "",
                    images=tuple(content.images),
                )
            )
            thoughts = ""
        elif kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], item["arguments"])
            if last is not None and last.role == "assistant" and not thoughts:
                messages[-1] = replace(last, tool_calls=(*last.tool_calls, call))
            else:
                messages.append(Message("assistant", "", tool_calls=(call,), reasoning=thoughts))
            thoughts = ""
        elif kind == "mcp_call":
            call = ToolCall(item["id"], item["name"], item["arguments"])
            messages.append(Message("assistant", "", tool_calls=(call,), reasoning=thoughts))
            result = f"Error: {item['error']}" if item.get("error") else item.get("output") or ""
            messages.append(Message("tool", result, tool_call_id=item["id"]))
            thoughts = ""
        elif kind == "function_call_output":
            output = item["output"]
            content = _content(
                output if isinstance(output, list) else [{"type": "input_text", "text": output}]
            )
            messages.append(
                Message(
                    "tool", content.text, tool_call_id=item["call_id"], images=tuple(content.images)
                )
            )
    return messages


def reasoning_text(item: dict) -> str:
    """A reasoning item's thoughts: its text, else its summary."""
    for name, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        texts = [
            part.get("text", "")
            for part in item.get(name) or ()
            if isinstance(part, dict) and part.get("type") == kind
        ]
        if any(texts):
            return "\n".join(texts)
    return ""


def _tools(fields: Fields, limits: Limits) -> tuple:
    """Function tools as the proxy holds them, the types of the others, left out, of those
    the hosted ones the gateway runs for no model, and the uses of the servers of tools it
    may run (:class:`ToolUse`: MCP servers, the web search)."""
    tools, left_out, hosted, uses = [], [], [], []
    for tool in offered_tools(fields, limits.max_tools):
        kind = tool.string("type")
        if kind == "mcp":
            uses.append(_mcp_use(tool))
            continue
        if kind is not None and kind.startswith(SEARCH):
            uses.append(_search_use(tool))
            continue
        if kind != "function":
            left_out.append(kind or "?")
            if kind is not None and kind.startswith(HOSTED):
                hosted.append(kind)
            continue
        parameters = tool.raw("parameters") or {"type": "object"}
        if not isinstance(parameters, dict):
            raise tool.fail("parameters", "must be a JSON Schema object")
        sized_schema(tool, "parameters", parameters, limits.max_schema_size)
        tool.boolean("strict")
        tools.append(function_tool(tool.required("name"), parameters, tool.string("description")))
    return tuple(tools), tuple(left_out), tuple(hosted), tuple(uses)


def _mcp_use(tool: Fields) -> ToolUse:
    """An ``mcp`` tool: one of the gateway's MCP servers, by its name as the label."""
    for name, why in (
        ("connector_id", "has no connectors: name one of its MCP servers as the server_label"),
        ("headers", "holds the credentials of the MCP servers it runs itself"),
        ("authorization", "holds the credentials of the MCP servers it runs itself"),
    ):
        if tool.raw(name) is not None:
            raise tool.fail(name, f"is not read here: this gateway {why}")
    allowed = tool.raw("allowed_tools")
    if isinstance(allowed, dict):
        allowed = Fields(allowed, tool.prefix + "allowed_tools.").raw("tool_names")
    if allowed is not None and not (
        isinstance(allowed, list) and all(isinstance(name, str) for name in allowed)
    ):
        raise tool.fail("allowed_tools", 'must be a list of tool names, or {"tool_names": [...]}')
    approval, exempt = _approval(tool)
    label = tool.required("server_label")
    url = tool.string("server_url") or ""
    allowed = None if allowed is None else tuple(allowed)
    return ToolUse(label, label, allowed, approval, exempt, url=url)


def _approval(tool: Fields) -> tuple:
    """``(approval, exempt)`` from ``require_approval``: ``always`` (OpenAI's default) or
    ``never``, or ``{"always": {"tool_names": …}, "never": {"tool_names": …}}``, whose
    lists say which tools are the other way."""
    raw = tool.raw("require_approval")
    if raw is None or raw in APPROVAL:
        return raw != "never", ()
    if not isinstance(raw, dict) or not set(raw) <= set(APPROVAL):
        raise tool.fail("require_approval", 'must be "always", "never" or {"never": …}')
    options = Fields(raw, tool.prefix + "require_approval.")
    named = {}
    for way in APPROVAL:
        group = options.object(way)
        names = group.raw("tool_names") if group is not None else None
        if names is not None and not (
            isinstance(names, list) and all(isinstance(name, str) for name in names)
        ):
            raise group.fail("tool_names", "must be a list of tool names")
        named[way] = tuple(names or ())
    if named["never"]:  # every other tool is asked for
        return True, named["never"]
    return False, named["always"]


def _search_use(tool: Fields) -> ToolUse:
    """A ``web_search`` tool: the gateway's web search, which may open the pages it finds
    unless the client keeps it to what the search returns (``external_web_access``)."""
    filters = tool.raw("filters")
    if filters is not None:
        raise tool.fail("filters", "is not read here: this gateway's web search takes no filters")
    opens = tool.boolean("external_web_access") is not False
    return ToolUse(WEB, "web", None if opens else ("web_search",), kind=tool.string("type"))


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
