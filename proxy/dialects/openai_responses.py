"""OpenAI's Responses API (``POST /v1/responses`` and its stored responses), both ways.

Requests: ``input`` as a string or items (``message`` with ``input_text`` / ``output_text``
parts, ``function_call``, ``function_call_output``; earlier ``reasoning`` items stay out of
the prompt), ``instructions``, ``function`` tools and ``tool_choice``, ``text.format``
(``json_schema`` through the structured-output compiler), ``max_output_tokens``. Tool types
only OpenAI runs (``web_search``, ``local_shell``, ``custom``, ``namespace``…) are left out
and named in the answer's ``x-oai-proxy-left-out-tools`` header.

Answers: the ``response`` object, ``status`` ``completed`` or ``incomplete`` (the token limit),
its ``output`` a ``reasoning`` item (the thoughts, when the model wrote some; as its
``summary`` too when one is asked for: a local model writes no summary of its own), a
``message`` with ``output_text``, and ``function_call`` items. Streams are the full event
sequence, each event typed and numbered (``sequence_number``) with an ``event:`` line, from
``response.created`` to ``response.completed`` (or ``response.incomplete``, or
``response.failed`` when the stream fails after its first byte).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Sequence

from proxy.dialects.streaming import EventRenderer
from proxy.errors import ProxyError
from proxy.events import (WAITING, Finish, ReasoningDelta, TextDelta, ToolCallDelta,
                          ToolCallEnd, ToolCallStart, UsageReport)
from proxy.fields import Fields, effort, response_format, template_kwargs
from proxy.sse import COMMENT
from proxy.types import (Completion, GenerationRequest, Message, ResponseFormat, Sampling,
                         ToolCall, ToolChoice, Usage, function_tool)

ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text", "text", "refusal")
# items of tools only OpenAI runs: they can only come from another server's answers
FOREIGN_ITEMS = ("web_search_call", "file_search_call", "computer_call", "computer_call_output",
                 "local_shell_call", "local_shell_call_output", "custom_tool_call",
                 "custom_tool_call_output", "image_generation_call", "code_interpreter_call",
                 "mcp_call", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response",
                 "shell_call", "shell_call_output", "apply_patch_call",
                 "apply_patch_call_output", "compaction")
LEFT_OUT_HEADER = "x-oai-proxy-left-out-tools"
AUTO = ToolChoice()


@dataclass(frozen=True)
class ResponsesAsk:
    """A Responses request: what to generate, the items it came as, how to answer."""

    request: GenerationRequest
    input_items: tuple  # this request's input, as items with ids (what a store keeps)
    stream: bool = False
    store: bool = True
    previous_response_id: Optional[str] = None
    instructions: Optional[str] = None
    summary: bool = False  # a reasoning summary was asked for
    left_out: tuple = ()  # tool types not offered to the model
    prompt_cache_key: Optional[str] = None
    echo: dict = field(default_factory=dict)  # request fields the response object repeats


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(12).hex()}"


# -- requests -------------------------------------------------------------------------------

def parse(body: Any, *, counting: bool = False) -> ResponsesAsk:
    """Read a ``/v1/responses`` body (``counting``: an ``input_tokens`` body)."""
    fields = Fields(body)
    items = _input_items(fields)
    instructions = fields.string("instructions")
    tools, left_out = _tools(fields)
    choice, offered = _tool_choice(fields, tools)
    parallel = fields.boolean("parallel_tool_calls")
    response_format = _text_format(fields)
    summary, effort_asked = _reasoning(fields)
    previous = fields.string("previous_response_id") or None
    cache_key = fields.string("prompt_cache_key") or None
    for name in ("user", "safety_identifier"):
        fields.string(name)
    metadata = fields.raw("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(value, str) for value in metadata.values())):
        raise fields.fail("metadata", "must be an object of strings")
    max_tokens = fields.integer("max_output_tokens", 1)
    request = GenerationRequest(
        model=fields.string("model") or None,
        messages=tuple(_instructions(instructions) + messages_of(items)),
        max_tokens=max_tokens,
        sampling=Sampling(temperature=fields.number("temperature", 0, 2),
                          top_p=fields.number("top_p", 0, 1)),
        response_format=response_format,
        tools=tools if offered else (), tool_choice=choice, parallel_tool_calls=parallel,
        template_kwargs=template_kwargs(fields, effort=effort_asked))
    store = fields.boolean("store")
    echo = {"instructions": instructions, "max_output_tokens": max_tokens,
            "parallel_tool_calls": parallel is not False,
            "temperature": request.sampling.temperature,
            "top_p": request.sampling.top_p, "tools": fields.raw("tools") or [],
            "tool_choice": fields.raw("tool_choice") or "auto", "metadata": metadata or {},
            "user": fields.raw("user"), "prompt_cache_key": cache_key,
            "reasoning": fields.raw("reasoning") or {"effort": None, "summary": None},
            "text": fields.raw("text") or {"format": {"type": "text"}}}
    return ResponsesAsk(request, tuple(items), stream=bool(fields.boolean("stream")),
                        store=store is not False and not counting,
                        previous_response_id=previous, instructions=instructions,
                        summary=summary, left_out=left_out, prompt_cache_key=cache_key,
                        echo=echo)


def continuing(ask: ResponsesAsk, history: Sequence[dict]) -> ResponsesAsk:
    """``ask`` after the items of the conversation it continues (its instructions first:
    those of earlier responses are not carried over)."""
    messages = _instructions(ask.instructions) + messages_of([*history, *ask.input_items])
    return replace(ask, request=replace(ask.request, messages=tuple(messages)))


def _instructions(text: Optional[str]) -> list:
    return [Message("system", text)] if text else []


def _input_items(fields: Fields) -> list:
    raw = fields.raw("input")
    if isinstance(raw, str):
        return [_message_item("user", [{"type": "input_text", "text": raw}])]
    if not isinstance(raw, list) or not raw:
        raise fields.fail("input", "must be a string or a non-empty list of items")
    return [_input_item(Fields(item, f"input[{i}].")) for i, item in enumerate(raw)]


def _message_item(role: str, content: list, id: Optional[str] = None) -> dict:
    return {"type": "message", "id": id or new_id("msg"), "role": role, "content": content}


def _input_item(fields: Fields) -> dict:
    """One input item, checked, with an id (as OpenAI gives each)."""
    kind = fields.string("type") or ("message" if "role" in fields.body else None)
    if kind == "message":
        role = fields.string("role")
        if role not in ROLES:
            raise fields.fail("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        content = fields.raw("content")
        if isinstance(content, str):
            parts = [{"type": "input_text" if role != "assistant" else "output_text",
                      "text": content}]
        elif isinstance(content, list):
            parts = [_part(Fields(part, f"{fields.prefix}content[{j}]."))
                     for j, part in enumerate(content)]
        else:
            raise fields.fail("content", "must be a string or a list of content parts")
        return _message_item(role, parts, fields.string("id"))
    if kind == "function_call":
        arguments = fields.string("arguments")
        if arguments is None:
            raise fields.fail("arguments", "is required")
        return {"type": "function_call", "id": fields.string("id") or new_id("fc"),
                "call_id": fields.required("call_id"), "name": fields.required("name"),
                "arguments": arguments}
    if kind == "function_call_output":
        return {"type": "function_call_output", "id": fields.string("id") or new_id("fco"),
                "call_id": fields.required("call_id"), "output": _output_text(fields)}
    if kind == "reasoning":
        return {"type": kind, "id": fields.string("id") or new_id("rs"),
                "summary": _thought_parts(fields, "summary", "summary_text"),
                "content": _thought_parts(fields, "content", "reasoning_text")}
    if kind in FOREIGN_ITEMS:
        return {"type": kind, "id": fields.string("id") or new_id("rs")}
    raise fields.fail("type", f"{kind!r} is not an input item this proxy can read; send "
                              f"message, function_call or function_call_output items")


def _thought_parts(fields: Fields, name: str, kind: str) -> list:
    """A reasoning item's ``summary`` or ``content`` parts of ``kind`` (others, and
    ``encrypted_content``, are another server's and stay out)."""
    return [{"type": kind, "text": part.text("text")} for part in fields.objects(name)
            if part.string("type") == kind]


def _part(fields: Fields) -> dict:
    kind = fields.string("type")
    if kind in TEXT_PARTS:
        name = "refusal" if kind == "refusal" else "text"
        return {"type": kind, name: fields.text(name)}
    raise fields.fail("type", f"{kind!r} cannot be read by a text model; send input_text")


def _output_text(fields: Fields) -> str:
    output = fields.raw("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "\n".join(_part(Fields(part, f"{fields.prefix}output[{j}].")).get("text", "")
                         for j, part in enumerate(output))
    raise fields.fail("output", "must be a string or a list of input_text parts")


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
            text = "\n".join(part.get("text", part.get("refusal", "")) for part in item["content"])
            messages.append(Message(item["role"], text, reasoning=thoughts
                                    if item["role"] == "assistant" else ""))
            thoughts = ""
        elif kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], item["arguments"])
            if last is not None and last.role == "assistant" and not thoughts:
                messages[-1] = replace(last, tool_calls=(*last.tool_calls, call))
            else:
                messages.append(Message("assistant", "", tool_calls=(call,), reasoning=thoughts))
            thoughts = ""
        elif kind == "function_call_output":
            messages.append(Message("tool", item["output"], tool_call_id=item["call_id"]))
    return messages


def reasoning_text(item: dict) -> str:
    """A reasoning item's thoughts: its text, else its summary."""
    for name, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        texts = [part.get("text", "") for part in item.get(name) or ()
                 if isinstance(part, dict) and part.get("type") == kind]
        if any(texts):
            return "\n".join(texts)
    return ""


def _tools(fields: Fields) -> tuple:
    """Function tools as the proxy holds them, and the types of the others, left out."""
    tools, left_out = [], []
    for tool in fields.objects("tools"):
        kind = tool.string("type")
        if kind != "function":
            left_out.append(kind or "?")
            continue
        parameters = tool.raw("parameters") or {"type": "object"}
        if not isinstance(parameters, dict):
            raise tool.fail("parameters", "must be a JSON Schema object")
        tool.boolean("strict")
        tools.append(function_tool(tool.required("name"), parameters,
                                   tool.string("description")))
    return tuple(tools), tuple(left_out)


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
            name = options.required("name")
            offered = [tool["function"]["name"] for tool in tools]
            if name not in offered:
                raise options.fail("name", f"names {name!r}, which is not among the function "
                                           f"tools ({', '.join(offered)})")
            return ToolChoice("function", name), True
    raise fields.fail("tool_choice", "must be auto, required, none or "
                                     "{\"type\": \"function\", \"name\": …}")


def _text_format(fields: Fields) -> Optional[ResponseFormat]:
    text = fields.object("text")
    options = text.object("format") if text is not None else None
    if options is None:
        return None
    return response_format(options.string("type"), options, options)


def _reasoning(fields: Fields) -> tuple:
    """``(summary?, effort)``: whether a summary of the reasoning is asked for, and how hard
    the model is to think (its template's ``reasoning_effort``, where it reads one)."""
    options = fields.object("reasoning")
    if options is None:
        return False, None
    summary = options.string("summary")
    return summary is not None and summary != "none", effort(options, "effort")


# -- answers ----------------------------------------------------------------------------------

def response_object(ask: ResponsesAsk, id: str, model: str, created: int, output: list,
                    usage: Optional[Usage], status: str,
                    error: Optional[ProxyError] = None) -> dict:
    """The ``response`` object, in any state."""
    return {
        "id": id, "object": "response", "created_at": created, "status": status,
        "error": None if error is None else {"code": error.code or error.type,
                                             "message": error.message},
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete"
        else None,
        "model": model, "output": output, "previous_response_id": ask.previous_response_id,
        "store": ask.store, "truncation": "disabled",
        "usage": None if usage is None else usage_body(usage), **ask.echo}


def render(ask: ResponsesAsk, id: str, model: str, completion: Completion) -> dict:
    """A whole response."""
    output = []
    if completion.reasoning:
        output.append(reasoning_item(new_id("rs"), completion.reasoning, ask.summary))
    status = status_of(completion.finish_reason)
    if completion.text or not completion.tool_calls:
        output.append(message_item(new_id("msg"), completion.text, status))
    output += [call_item(new_id("fc"), call.id, call.name, call.arguments)
               for call in completion.tool_calls]
    return response_object(ask, id, model, int(time.time()), output, completion.usage, status)


def status_of(finish_reason: str) -> str:
    return "incomplete" if finish_reason == "length" else "completed"


def reasoning_item(id: str, text: str, summary: bool, status: str = "completed") -> dict:
    return {"id": id, "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}] if summary and text else [],
            "content": [{"type": "reasoning_text", "text": text}] if text else [],
            "encrypted_content": None, "status": status}


def message_item(id: str, text: str, status: str = "completed") -> dict:
    return {"id": id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [],
                         "logprobs": []}] if status != "in_progress" else []}


def call_item(id: str, call_id: str, name: str, arguments: str,
              status: str = "completed") -> dict:
    return {"id": id, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


def usage_body(usage: Usage) -> dict:
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens or 0},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
            "total_tokens": usage.total_tokens}


def render_count(tokens: int) -> dict:
    return {"object": "response.input_tokens", "input_tokens": tokens}


def render_deleted(id: str) -> dict:
    return {"id": id, "object": "response.deleted", "deleted": True}


def render_items(items: Sequence[dict], has_more: bool) -> dict:
    return {"object": "list", "data": list(items),
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": has_more}


def left_out_header(ask: ResponsesAsk) -> dict:
    return {LEFT_OUT_HEADER: ", ".join(ask.left_out)} if ask.left_out else {}


class Stream(EventRenderer):
    """The Responses API's event sequence from the core's events, each event numbered.

    ``finished`` is told the final response object, once the stream has one (to store it).
    """

    named = True
    end = b""

    def __init__(self, ask: ResponsesAsk, id: str, model: str,
                 finished: Callable[[dict], None] = lambda response: None) -> None:
        self.ask = ask
        self.id = id
        self.model = model
        self.finished = finished
        self.created = int(time.time())
        self.sequence = 0
        self.started = False
        self.output: list = []  # the items so far, the open one last
        self.open: Optional[str] = None  # the open item's type
        self.texts: list = []  # the open item's text (or arguments)
        self.usage = Usage()

    def failure(self, error: ProxyError) -> list:
        self.output = [item for item in self.output if item.get("status") != "in_progress"]
        return [self._numbered({"type": "response.failed", "response": response_object(
            self.ask, self.id, self.model, self.created, self.output, None, "failed", error)})]

    def event(self, event, out: list) -> None:
        if not self.started:
            self.started = True
            for kind in ("response.created", "response.in_progress"):
                out.append(self._numbered({"type": kind, "response": self._response(
                    "in_progress", None)}))
        kind = type(event)
        if kind is TextDelta:
            if event.text:
                self._open_message(out)
                self.texts.append(event.text)
                out.append(self._part_event("response.output_text.delta", delta=event.text,
                                            logprobs=[]))
        elif kind is ReasoningDelta:
            self._open_reasoning(out)
            self.texts.append(event.text)
            out.append(self._part_event("response.reasoning_text.delta", delta=event.text))
            if self.ask.summary:
                out.append(self._item_event("response.reasoning_summary_text.delta",
                                            summary_index=0, delta=event.text))
        elif kind is ToolCallStart:
            self._close(out)
            self._add(call_item(new_id("fc"), event.id, event.name, "", "in_progress"), out)
        elif kind is ToolCallDelta:
            self.texts.append(event.arguments)
            out.append(self._item_event("response.function_call_arguments.delta",
                                        delta=event.arguments))
        elif kind is ToolCallEnd:
            self._close(out)
        elif kind is UsageReport:
            self.usage = event.usage
        elif kind is Finish:
            self._finish(event, out)
        elif event is WAITING:
            out.append(COMMENT)

    # -- items ---------------------------------------------------------------------------------

    def _open_message(self, out: list) -> None:
        if self.open == "message":
            return
        self._close(out)
        self._add(message_item(new_id("msg"), "", "in_progress"), out)
        out.append(self._part_event("response.content_part.added", part={
            "type": "output_text", "text": "", "annotations": [], "logprobs": []}))

    def _open_reasoning(self, out: list) -> None:
        if self.open == "reasoning":
            return
        self._close(out)
        item = reasoning_item(new_id("rs"), "", False, "in_progress")
        self._add(item, out)
        out.append(self._part_event("response.content_part.added",
                                    part={"type": "reasoning_text", "text": ""}))
        if self.ask.summary:
            out.append(self._item_event("response.reasoning_summary_part.added",
                                        summary_index=0,
                                        part={"type": "summary_text", "text": ""}))

    def _add(self, item: dict, out: list) -> None:
        self.output.append(item)
        self.open = item["type"]
        self.texts = []
        out.append(self._numbered({"type": "response.output_item.added",
                                   "output_index": len(self.output) - 1, "item": dict(item)}))

    def _close(self, out: list, status: str = "completed") -> None:
        """End the open item: its done events, then ``output_item.done`` with it whole."""
        if self.open is None:
            return
        text = "".join(self.texts)
        item = self.output[-1]
        if self.open == "message":
            done = message_item(item["id"], text, status)
            out.append(self._part_event("response.output_text.done", text=text, logprobs=[]))
            out.append(self._part_event("response.content_part.done",
                                        part=done["content"][0]))
        elif self.open == "reasoning":
            done = reasoning_item(item["id"], text, self.ask.summary)
            out.append(self._part_event("response.reasoning_text.done", text=text))
            out.append(self._part_event("response.content_part.done",
                                        part={"type": "reasoning_text", "text": text}))
            if self.ask.summary:
                out.append(self._item_event("response.reasoning_summary_text.done",
                                            summary_index=0, text=text))
                out.append(self._item_event("response.reasoning_summary_part.done",
                                            summary_index=0,
                                            part={"type": "summary_text", "text": text}))
        else:
            done = call_item(item["id"], item["call_id"], item["name"], text)
            out.append(self._item_event("response.function_call_arguments.done",
                                        arguments=text, name=item["name"]))
        self.output[-1] = done
        self.open = None
        out.append(self._numbered({"type": "response.output_item.done",
                                   "output_index": len(self.output) - 1, "item": done}))

    def _finish(self, event: Finish, out: list) -> None:
        status = status_of(event.reason)
        if not self.output:  # nothing said: an empty message, as a whole response has
            self._open_message(out)
        self._close(out, status)
        response = self._response(status, self.usage)
        out.append(self._numbered({"type": f"response.{status}", "response": response}))
        self.finished(response)

    # -- events --------------------------------------------------------------------------------

    def _response(self, status: str, usage: Optional[Usage]) -> dict:
        return response_object(self.ask, self.id, self.model, self.created,
                               [dict(item) for item in self.output], usage, status)

    def _item_event(self, kind: str, **fields) -> dict:
        return self._numbered({"type": kind, "item_id": self.output[-1]["id"],
                               "output_index": len(self.output) - 1, **fields})

    def _part_event(self, kind: str, **fields) -> dict:
        return self._item_event(kind, content_index=0, **fields)

    def _numbered(self, payload: dict) -> dict:
        payload["sequence_number"] = self.sequence
        self.sequence += 1
        return payload
