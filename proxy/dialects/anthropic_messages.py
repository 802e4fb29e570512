"""Anthropic's Messages API (``POST /v1/messages``, ``/v1/messages/count_tokens``), both ways.

Requests: ``system`` (a string or text blocks), ``messages`` of text, ``tool_use`` and
``tool_result`` blocks (earlier ``thinking`` blocks stay out of the prompt), custom tools with
their ``input_schema`` and ``tool_choice``; Anthropic's own server tools (``web_search`` and
the like, which carry a dated ``type`` and no schema) are left out and named in the answer's
``x-oai-proxy-left-out-tools`` header. Images and other blocks a text model cannot read are a
400 naming the block.

A system block that begins ``x-anthropic-billing-header:`` (Claude Code writes one first, and
its value changes between sessions) is left out of the prompt: left in, it would change the
prompt's first tokens, so no turn of another session could reuse the KV cache.

Answers: ``{id: "msg_…", type: "message", content: [thinking?, text?, tool_use*],
stop_reason, stop_sequence, usage}``; streams are Anthropic's event sequence, each event with
an ``event:`` line: ``message_start``, each block's ``content_block_start`` / ``_delta`` /
``_stop`` with indices from 0, ``message_delta``, ``message_stop``; ``ping`` while a model's
server starts; ``error`` when a stream fails after its first byte.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Optional

from proxy.dialects.streaming import EventRenderer
from proxy.errors import ContextLengthError, InvalidRequestError, ProxyError
from proxy.events import (WAITING, Finish, PromptCounted, ReasoningDelta, TextDelta,
                          ToolCallDelta, ToolCallEnd, ToolCallStart, UsageReport)
from proxy.fields import Fields, response_format, stop_words, template_kwargs
from proxy.types import (Completion, GenerationRequest, Message, ResponseFormat, Sampling,
                         ToolCall, ToolChoice, Usage, function_tool)

ROLES = ("user", "assistant", "system")
VOLATILE_SYSTEM = "x-anthropic-billing-header:"  # see the module's docstring
LEFT_OUT_HEADER = "x-oai-proxy-left-out-tools"
AUTO = ToolChoice()
# the error type each status stands for, as Anthropic names them
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error"}
STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}


@dataclass(frozen=True)
class MessagesAsk:
    """A Messages request: what to generate, and how the client wants the answer."""

    request: GenerationRequest
    stream: bool = False
    thinking: bool = False  # the client asked to see the model's thoughts
    stop_sequences: tuple = ()  # the client's own, to tell stop_sequence from end_turn
    left_out: tuple = ()  # names of server tools that are not offered to the model


def new_id() -> str:
    return f"msg_{os.urandom(12).hex()}"


# -- requests -------------------------------------------------------------------------------

def parse(body: Any, *, counting: bool = False) -> MessagesAsk:
    """Read a ``/v1/messages`` body (``counting``: a ``count_tokens`` body, without
    ``max_tokens``)."""
    fields = Fields(body)
    max_tokens = fields.integer("max_tokens", 1)
    if max_tokens is None and not counting:
        raise fields.fail("max_tokens", "is required")
    messages = _system(fields) + _messages(fields)
    tools, left_out = _tools(fields)
    choice, parallel = _tool_choice(fields, tools)
    stop = stop_words(fields, "stop_sequences")
    thinking, shown = _thinking(fields)
    output = fields.object("output_config")
    request = GenerationRequest(
        model=fields.string("model") or None, messages=messages, max_tokens=max_tokens,
        stop=stop, sampling=Sampling(temperature=fields.number("temperature", 0, 1),
                                     top_p=fields.number("top_p", 0, 1),
                                     top_k=fields.integer("top_k", 0)),
        response_format=_format(output),
        tools=tools if choice is not None else (), tool_choice=choice or AUTO,
        parallel_tool_calls=parallel,
        template_kwargs=template_kwargs(fields, thinking=thinking, effort=_effort(output)))
    return MessagesAsk(request, stream=bool(fields.boolean("stream")), thinking=shown,
                       stop_sequences=stop, left_out=left_out)


def _system(fields: Fields) -> tuple:
    raw = fields.raw("system")
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (Message("system", raw),) if raw else ()
    texts = []
    for block in fields.objects("system"):
        if block.string("type") != "text":
            raise block.fail("type", "must be text")
        text = block.text("text")
        if not text.startswith(VOLATILE_SYSTEM):
            texts.append(text)
    text = "\n\n".join(texts)
    return (Message("system", text),) if text else ()


def _messages(fields: Fields) -> tuple:
    raw = fields.raw("messages")
    if not isinstance(raw, list) or not raw:
        raise fields.fail("messages", "must be a non-empty list of messages")
    messages: list = []
    for i, item in enumerate(raw):
        message = Fields(item, f"messages[{i}].")
        role = message.string("role")
        if role not in ROLES:
            raise message.fail("role", f"must be user or assistant, got {role!r}")
        content = message.raw("content")
        if isinstance(content, str):
            messages.append(Message(role, content))
            continue
        if not isinstance(content, list):
            raise message.fail("content", "must be a string or a list of content blocks")
        messages += _turn(role, content, f"messages[{i}].content")
    return tuple(messages)


def _turn(role: str, blocks: list, where: str) -> list:
    """One message's blocks as chat messages: a user's tool results first (one message
    each), then its text; an assistant's text with its tool calls and its thoughts."""
    texts, calls, results, thoughts = [], [], [], []
    for j, block in enumerate(blocks):
        block_fields = Fields(block, f"{where}[{j}].")
        kind = block_fields.string("type")
        if kind == "text":
            texts.append(block_fields.text("text"))
        elif kind == "tool_use" and role == "assistant":
            calls.append(_tool_use(block_fields))
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block_fields))
        elif kind == "thinking" and role == "assistant":
            thoughts.append(block_fields.text("thinking"))
        elif kind in ("thinking", "redacted_thinking", "server_tool_use") or (
                kind or "").endswith("_tool_result"):
            continue  # sealed thoughts, and the results of tools only Anthropic runs
        elif kind == "document":
            texts.append(_document(block_fields))
        elif kind == "image":
            raise InvalidRequestError(
                f"'{where}[{j}]' is an image: the models this proxy serves read text only",
                param=f"{where}[{j}]")
        else:
            raise block_fields.fail("type", f"{kind!r} is not a content block this proxy "
                                            f"can give a {role} message")
    text = "\n".join(texts)
    if role == "assistant":
        return [Message("assistant", text, tool_calls=tuple(calls),
                        reasoning="\n".join(thoughts))] if text or calls else []
    return results + ([Message(role, text)] if text or not results else [])


def _tool_use(fields: Fields) -> ToolCall:
    """An assistant's earlier call; its input as compact JSON text, as llama.cpp writes it."""
    name = fields.required("name")
    arguments = fields.raw("input")
    if not isinstance(arguments, dict):
        raise fields.fail("input", "must be an object")
    return ToolCall(fields.required("id"), name,
                    json.dumps(arguments, ensure_ascii=False, separators=(",", ":")))


def _tool_result(fields: Fields) -> Message:
    content = fields.raw("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(_result_text(Fields(block, f"{fields.prefix}content[{k}]."))
                         for k, block in enumerate(content))
    else:
        raise fields.fail("content", "must be a string or a list of content blocks")
    if fields.boolean("is_error"):
        text = f"Error: {text}"
    return Message("tool", text, tool_call_id=fields.required("tool_use_id"))


def _result_text(fields: Fields) -> str:
    kind = fields.string("type")
    if kind == "text":
        return fields.text("text")
    if kind == "document":
        return _document(fields)
    raise fields.fail("type", f"{kind!r} cannot be read by a text model; send text")


def _document(fields: Fields) -> str:
    """A document the model can read: plain text, or text blocks."""
    source = Fields(fields.raw("source"), f"{fields.prefix}source.")
    kind = source.string("type")
    if kind == "text":
        return source.text("data")
    if kind == "content" and isinstance(source.raw("content"), str):
        return source.raw("content")
    if kind == "content" and isinstance(source.raw("content"), list):
        return "\n".join(_result_text(Fields(block, f"{source.prefix}content[{k}]."))
                         for k, block in enumerate(source.raw("content")))
    raise source.fail("type", f"{kind!r} documents cannot be read by a text model; send text")


def _tools(fields: Fields) -> tuple:
    """Custom tools as the proxy holds them, and the names of the server tools left out."""
    tools, left_out = [], []
    for tool in fields.objects("tools"):
        name = tool.required("name")
        kind = tool.string("type")
        schema = tool.raw("input_schema")
        if schema is None and kind not in (None, "custom"):
            left_out.append(name)  # one of Anthropic's own: it runs them, this proxy cannot
            continue
        if not isinstance(schema, dict):
            raise tool.fail("input_schema", "must be a JSON Schema object")
        tools.append(function_tool(name, schema, tool.string("description")))
    return tuple(tools), tuple(left_out)


def _tool_choice(fields: Fields, tools: tuple) -> tuple:
    """``(choice, parallel)``; a ``None`` choice (``none``) offers no tools at all, and
    ``parallel`` is ``None`` unless the client turns parallel calls off."""
    options = fields.object("tool_choice")
    if options is None:
        return AUTO, None
    kind = options.string("type")
    parallel = False if options.boolean("disable_parallel_tool_use") else None
    if kind == "auto":
        return AUTO, parallel
    if kind == "none":
        return None, parallel
    if kind not in ("any", "tool"):
        raise options.fail("type", "must be auto, any, tool or none")
    if not tools:
        raise options.fail("type", f"{kind} needs tools to choose from")
    if kind == "any":
        return ToolChoice("required"), parallel
    name = options.required("name")
    offered = [tool["function"]["name"] for tool in tools]
    if name not in offered:
        raise options.fail("name", f"names {name!r}, which is not among the tools the model "
                                   f"is offered ({', '.join(offered)})")
    return ToolChoice("function", name), parallel


THINKING = ("enabled", "adaptive", "between_tools", "disabled")
EFFORTS = ("low", "medium", "high", "xhigh", "max")


def _thinking(fields: Fields) -> tuple:
    """``(think?, show?)``: whether the client wants the model to think (``enabled``,
    ``adaptive``, ``between_tools``) or not (``disabled``), ``None`` for as the model's
    template does by default; and whether to show the thoughts (unless ``display`` is
    ``omitted``). ``budget_tokens`` is advisory: a local model thinks as long as it thinks."""
    options = fields.object("thinking")
    if options is None:
        return None, False
    kind = options.string("type")
    if kind not in THINKING:
        raise options.fail("type", f"must be one of {', '.join(THINKING)}")
    if kind == "enabled":
        options.integer("budget_tokens", 1)
    display = options.string("display")
    if display not in (None, "summarized", "omitted"):
        raise options.fail("display", "must be summarized or omitted")
    thinks = kind != "disabled"
    return thinks, thinks and display != "omitted"


def _effort(output: Optional[Fields]) -> Optional[str]:
    """``output_config.effort``: the model's template's ``reasoning_effort``."""
    effort = output.string("effort") if output is not None else None
    if effort is not None and effort not in EFFORTS:
        raise output.fail("effort", f"must be one of {', '.join(EFFORTS)}")
    return effort


def _format(output: Optional[Fields]) -> Optional[ResponseFormat]:
    """``output_config.format``: a JSON schema the answer must match."""
    options = output.object("format") if output is not None else None
    if options is None:
        return None
    if options.string("type") != "json_schema":
        raise options.fail("type", "must be json_schema")
    return response_format("json_schema", options, options)


# -- answers ----------------------------------------------------------------------------------

def render(ask: MessagesAsk, id: str, model: str, completion: Completion) -> dict:
    """A whole ``message``."""
    content = []
    if ask.thinking and completion.reasoning:
        content.append({"type": "thinking", "thinking": completion.reasoning,
                        "signature": signature(completion.reasoning)})
    if completion.text or not (content or completion.tool_calls):
        content.append({"type": "text", "text": completion.text})
    content += [{"type": "tool_use", "id": call.id, "name": call.name,
                 "input": _input(call)} for call in completion.tool_calls]
    reason, sequence = stop_reason(ask, completion.finish_reason, completion.stop_sequence)
    return {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": reason, "stop_sequence": sequence,
            "usage": usage_body(completion.usage)}


def render_count(tokens: int) -> dict:
    return {"input_tokens": tokens}


def stop_reason(ask: MessagesAsk, reason: str, stop_sequence: Optional[str]) -> tuple:
    """``(stop_reason, stop_sequence)``: a stop word counts as the client's only when it is
    one of its ``stop_sequences`` (the template's own end the turn)."""
    if reason == "stop" and stop_sequence in ask.stop_sequences:
        return "stop_sequence", stop_sequence
    return STOP_REASONS.get(reason, "end_turn"), None


def usage_body(usage: Usage) -> dict:
    """Anthropic counts cached prompt tokens apart from the rest of the input."""
    cached = usage.cached_tokens or 0
    return {"input_tokens": usage.prompt_tokens - cached, "output_tokens":
            usage.completion_tokens, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached}


def signature(thoughts: str) -> str:
    """An opaque mark of the thoughts, as Anthropic clients expect one (never checked here:
    earlier thoughts stay out of the prompt)."""
    return hashlib.blake2b(thoughts.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _input(call: ToolCall) -> object:
    try:
        return json.loads(call.arguments)
    except ValueError:
        return {}


def error_body(error: ProxyError) -> dict:
    """Anthropic's error shape; a prompt too long for the model in Anthropic's own words,
    which agents read to compact their history."""
    message = error.message
    if isinstance(error, ContextLengthError):
        message = f"prompt is too long: {error.prompt_tokens} tokens > {error.limit} maximum"
    return {"type": "error", "error": {"type": error_type(error), "message": message}}


def error_type(error: ProxyError) -> str:
    return ERROR_TYPES.get(error.status, "api_error")


class Stream(EventRenderer):
    """Anthropic's event sequence from the core's events."""

    named = True
    end = b""

    def __init__(self, ask: MessagesAsk, id: str, model: str) -> None:
        self.ask = ask
        self.id = id
        self.model = model
        self.started = False  # message_start has gone out
        self.block: Optional[str] = None  # the type of the open block
        self.index = -1  # its index
        self.thoughts: list = []  # the open thinking block's text, for its signature
        self.prompt = 0
        self.usage = Usage()

    @staticmethod
    def failure(error: ProxyError) -> list:
        return [error_body(error)]

    def event(self, event, out: list) -> None:
        kind = type(event)
        if not self.started:
            if kind is PromptCounted:
                self.prompt = event.tokens
                return
            self._start(out)
        if kind is TextDelta:
            if event.text:
                self._open("text", {"type": "text", "text": ""}, out)
                out.append(self._delta({"type": "text_delta", "text": event.text}))
        elif kind is ReasoningDelta:
            if self.ask.thinking:
                self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""},
                           out)
                self.thoughts.append(event.text)
                out.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
        elif kind is ToolCallStart:
            self._open("tool_use", {"type": "tool_use", "id": event.id, "name": event.name,
                                    "input": {}}, out, fresh=True)
        elif kind is ToolCallDelta:
            out.append(self._delta({"type": "input_json_delta",
                                    "partial_json": event.arguments}))
        elif kind is ToolCallEnd:
            self._close(out)
        elif kind is UsageReport:
            self.usage = event.usage
        elif kind is Finish:
            self._finish(event, out)
        elif event is WAITING:
            out.append({"type": "ping"})

    def _start(self, out: list) -> None:
        self.started = True
        out.append({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.prompt, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})

    def _open(self, block: str, start: dict, out: list, fresh: bool = False) -> None:
        """Make ``block`` the open block, closing another first (``fresh``: always anew)."""
        if self.block == block and not fresh:
            return
        self._close(out)
        self.block = block
        self.index += 1
        out.append({"type": "content_block_start", "index": self.index, "content_block": start})

    def _close(self, out: list) -> None:
        if self.block is None:
            return
        if self.block == "thinking":
            out.append(self._delta({"type": "signature_delta",
                                    "signature": signature("".join(self.thoughts))}))
            self.thoughts = []
        out.append({"type": "content_block_stop", "index": self.index})
        self.block = None

    def _delta(self, delta: dict) -> dict:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def _finish(self, event: Finish, out: list) -> None:
        if self.index < 0:  # nothing said: an empty text block, as a whole answer has
            self._open("text", {"type": "text", "text": ""}, out)
        self._close(out)
        reason, sequence = stop_reason(self.ask, event.reason, event.stop_sequence)
        out.append({"type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": usage_body(self.usage)})
        out.append({"type": "message_stop"})


def left_out_header(ask: MessagesAsk) -> dict:
    """The response header naming the server tools left out, when any were."""
    return {LEFT_OUT_HEADER: ", ".join(ask.left_out)} if ask.left_out else {}

