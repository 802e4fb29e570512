"""Messages requests: a ``/v1/messages`` body as an :class:`Ask` (see the package's docstring
for what is read and what is left out)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from proxy.core.errors import UntranslatableError
from proxy.core.fields import (
    Fields,
    chosen_function,
    offered_tools,
    response_format,
    sized_schema,
    stop_words,
    template_kwargs,
)
from proxy.core.types import (
    GenerationRequest,
    Message,
    ResponseFormat,
    Sampling,
    ToolCall,
    ToolChoice,
    Verbatim,
    amended,
    function_tool,
)
from proxy.dialects.anthropic.hosted import (
    TOOLSET,
    UPSTREAM_ONLY,
    WEB_SERVER_TOOLS,
    mcp_uses,
    toolset_server,
    upstream_runs,
    web_use,
)
from proxy.dialects.dialect import Ask, Content, Limits

ROLES = ("user", "assistant", "system")
VOLATILE_SYSTEM = "x-anthropic-billing-header:"  # see the package's docstring
AUTO = ToolChoice()
# blocks that stay out of the prompt: sealed thoughts, and hosted tools' calls (each with a
# result, ``*_tool_result``) that the answer's text after them tells of
SKIPPED = ("thinking", "redacted_thinking", "server_tool_use", "mcp_tool_use")
THINKING = ("enabled", "adaptive", "between_tools", "disabled")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
# the types of the tools Anthropic's servers run (dated: web_search_20250305): those the
# gateway runs itself, and those it does not; its client runs the others (bash, text_editor,
# computer), which a model here is not offered


@dataclass(frozen=True)
class MessagesNotes:
    """What a Messages answer is rendered by (an :class:`Ask`'s notes)."""

    thinking: bool = False  # the client asked to see the model's thoughts
    stop_sequences: tuple = ()  # the client's own, to tell stop_sequence from end_turn


def parse(
    body: Any, limits: Limits = Limits(), *, counting: bool = False, passing: bool = False
) -> Ask:
    """Read a ``/v1/messages`` body (``counting``: a ``count_tokens`` body, without
    ``max_tokens``). ``passing``: its model is on a server that speaks the Messages API
    itself, which takes blocks the proxy cannot read: the body goes to it as it came, and a
    fallback of another API refuses it as the proxy would have."""
    try:
        ask = _parse(body, limits, counting)
        ask = _served_there(ask) if passing else ask
    except UntranslatableError as error:
        if not passing:
            raise
        ask = _untranslated(body, error, counting)
    return amended(ask, upstream_runs=upstream_runs(body)) if passing else ask


def _served_there(ask: Ask) -> Ask:
    """A translated ask whose model's server runs the hosted tools itself: none for the
    gateway to run, and those it would have run named as left out, should a fallback of
    another API answer."""
    request = ask.request
    named = tuple(use.name for use in request.uses)
    return amended(
        ask, requests=(amended(request, uses=()),), not_run=(), not_offered=ask.not_offered + named
    )


def _untranslated(body: dict, error: UntranslatableError, counting: bool) -> Ask:
    fields = Fields(body)
    max_tokens = fields.integer("max_tokens", 1)
    if max_tokens is None and not counting:
        raise fields.fail("max_tokens", "is required")
    request = GenerationRequest(
        model=fields.string("model") or None,
        max_tokens=max_tokens,
        verbatim=Verbatim("anthropic", body, untranslated=error),
    )
    return Ask((request,), stream=bool(fields.boolean("stream")), notes=MessagesNotes())


def _parse(body: Any, limits: Limits, counting: bool) -> Ask:
    fields = Fields(body)
    max_tokens = fields.integer("max_tokens", 1)
    if max_tokens is None and not counting:
        raise fields.fail("max_tokens", "is required")
    messages = _system(fields) + _messages(fields, limits)
    tools, not_offered, hosted, uses = _tools(fields, limits)
    choice, parallel = _tool_choice(fields, tools)
    stop = stop_words(fields, "stop_sequences")
    thinking, shown = _thinking(fields)
    output = fields.object("output_config")
    request = GenerationRequest(
        model=fields.string("model") or None,
        messages=messages,
        max_tokens=max_tokens,
        stop=stop,
        sampling=Sampling(
            temperature=fields.number("temperature", 0, 1),
            top_p=fields.number("top_p", 0, 1),
            top_k=fields.integer("top_k", 0),
        ),
        response_format=_format(output, limits),
        tools=tools if choice is not None else (),
        tool_choice=choice or AUTO,
        parallel_tool_calls=parallel,
        template_kwargs=template_kwargs(fields, thinking=thinking, effort=_effort(output)),
        verbatim=Verbatim("anthropic", body),
        uses=uses if choice is not None else (),
    )
    return Ask(
        (request,),
        stream=bool(fields.boolean("stream")),
        notes=MessagesNotes(shown, stop),
        not_run=hosted,
        not_offered=not_offered,
    )


def _system(fields: Fields) -> tuple:
    raw = fields.raw("system")
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (Message("system", raw),) if raw else ()
    texts = []
    for block in fields.objects("system"):
        if block.string("type") != "text":
            raise _unreadable(block, "type", "must be text")
        text = block.text("text")
        if not text.startswith(VOLATILE_SYSTEM):
            texts.append(text)
    text = "\n\n".join(texts)
    return (Message("system", text),) if text else ()


def _messages(fields: Fields, limits: Limits) -> tuple:
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
        messages += _turn(role, content, f"messages[{i}].content", limits)
    return tuple(messages)


def _turn(role: str, blocks: list, where: str, limits: Limits) -> list:
    """One message's blocks as chat messages: a user's tool results first (one message
    each), then its text and images; an assistant's text with its tool calls and its
    thoughts."""
    content, calls, results, thoughts = Content(limits), [], [], []
    for j, block in enumerate(blocks):
        block_fields = Fields(block, f"{where}[{j}].")
        kind = block_fields.string("type")
        if kind == "text":
            content.add_text(block_fields.text("text"))
        elif kind == "tool_use" and role == "assistant":
            calls.append(_tool_use(block_fields))
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block_fields, limits))
        elif kind == "thinking" and role == "assistant":
            thoughts.append(block_fields.text("thinking"))
        elif kind in SKIPPED or (kind or "").endswith("_tool_result"):
            continue  # sealed thoughts, and the calls and results of hosted tools
        elif kind == "document":
            content.add_text(_document(block_fields))
        elif kind == "image" and role == "user":
            _image(block_fields, content)
        else:
            raise _unreadable(
                block_fields,
                "type",
                f"{kind!r} is not a content block this proxy can give a {role} message",
            )
    text, images = content.text, tuple(content.images)
    if role == "assistant":
        return (
            [Message("assistant", text, tool_calls=tuple(calls), reasoning="\n".join(thoughts))]
            if text or calls
            else []
        )
    return results + ([Message(role, text, images=images)] if text or images or not results else [])


def _image(fields: Fields, content: Content) -> None:
    """An ``image`` block: its ``source`` in ``base64`` (with its media type) or a ``url``."""
    source = fields.object("source")
    if source is None:
        raise fields.fail("source", "is required")
    kind = source.string("type")
    if kind == "base64":
        media_type = source.required("media_type")
        if not media_type.startswith("image/"):
            raise source.fail("media_type", f"must be an image's media type, got {media_type!r}")
        content.add_base64(source.required("data"), f"{source.prefix}data")
    elif kind == "url":
        content.add_url(source.required("url"), f"{source.prefix}url")
    else:
        raise _unreadable(source, "type", f"must be base64 or url, got {kind!r}")


def _tool_use(fields: Fields) -> ToolCall:
    """An assistant's earlier call; its input as compact JSON text, as llama.cpp writes it."""
    name = fields.required("name")
    arguments = fields.raw("input")
    if not isinstance(arguments, dict):
        raise fields.fail("input", "must be an object")
    return ToolCall(
        fields.required("id"),
        name,
        json.dumps(arguments, ensure_ascii=False, separators=(",", ":")),
    )


def _tool_result(fields: Fields, limits: Limits) -> Message:
    raw = fields.raw("content")
    content = Content(limits, "Error: " if fields.boolean("is_error") else "")
    if isinstance(raw, str):
        content.add_text(raw)
    elif isinstance(raw, list):
        for k, block in enumerate(raw):
            block_fields = Fields(block, f"{fields.prefix}content[{k}].")
            if block_fields.string("type") == "image":
                _image(block_fields, content)
            else:
                content.add_text(_result_text(block_fields))
    elif raw is not None:
        raise fields.fail("content", "must be a string or a list of content blocks")
    return Message(
        "tool",
        content.text,
        tool_call_id=fields.required("tool_use_id"),
        images=tuple(content.images),
    )


def _result_text(fields: Fields) -> str:
    kind = fields.string("type")
    if kind == "text":
        return fields.text("text")
    if kind == "document":
        return _document(fields)
    raise _unreadable(
        fields,
        "type",
        f"{kind!r} is not a block a tool result can hold here; text, image and document are",
    )


def _document(fields: Fields) -> str:
    """A document the model can read: plain text, or text blocks."""
    source = Fields(fields.raw("source"), f"{fields.prefix}source.")
    kind = source.string("type")
    if kind == "text":
        return source.text("data")
    if kind == "content" and isinstance(source.raw("content"), str):
        return source.raw("content")
    if kind == "content" and isinstance(source.raw("content"), list):
        return "\n".join(
            _result_text(Fields(block, f"{source.prefix}content[{k}]."))
            for k, block in enumerate(source.raw("content"))
        )
    raise _unreadable(
        source, "type", f"{kind!r} documents cannot be read by a text model; send text"
    )


def _tools(fields: Fields, limits: Limits) -> tuple:
    """Custom tools as the proxy holds them; the names of Anthropic's own tools its client
    runs, left out; the types of those its servers run that the gateway does not; and the
    uses of the servers of tools the gateway runs for the rest (see :mod:`.hosted`)."""
    tools, not_offered, hosted, uses, toolsets = [], [], [], [], {}
    for tool in offered_tools(fields, limits.max_tools):
        kind = tool.string("type")
        if kind == TOOLSET:
            toolset_server(tool, toolsets)
            continue
        name = tool.required("name")
        schema = tool.raw("input_schema")
        if schema is None and kind not in (None, "custom"):
            if kind.startswith(WEB_SERVER_TOOLS):
                uses.append(web_use(tool, kind))
                continue
            not_offered.append(name)  # one of Anthropic's own: its client or its servers run it
            if kind.startswith(UPSTREAM_ONLY):
                hosted.append(kind)
            continue
        if not isinstance(schema, dict):
            raise tool.fail("input_schema", "must be a JSON Schema object")
        sized_schema(tool, "input_schema", schema, limits.max_schema_size)
        tools.append(function_tool(name, schema, tool.string("description")))
    uses = mcp_uses(fields, toolsets) + tuple(uses)
    return tuple(tools), tuple(not_offered), tuple(hosted), uses


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
    return chosen_function(options, tools), parallel


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


def _unreadable(fields: Fields, name: str, message: str) -> UntranslatableError:
    """A block the proxy cannot give a model, which a Messages API server may read."""
    return UntranslatableError(f"'{fields.prefix}{name}' {message}", param=fields.prefix + name)


def _effort(output: Optional[Fields]) -> Optional[str]:
    """``output_config.effort``: the model's template's ``reasoning_effort``."""
    effort = output.string("effort") if output is not None else None
    if effort is not None and effort not in EFFORTS:
        raise output.fail("effort", f"must be one of {', '.join(EFFORTS)}")
    return effort


def _format(output: Optional[Fields], limits: Limits) -> Optional[ResponseFormat]:
    """``output_config.format``: a JSON schema the answer must match."""
    options = output.object("format") if output is not None else None
    if options is None:
        return None
    if options.string("type") != "json_schema":
        raise options.fail("type", "must be json_schema")
    return response_format("json_schema", options, options, limits.max_schema_size)
