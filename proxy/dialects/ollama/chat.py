"""``POST /api/chat``, both ways: a :class:`~proxy.dialects.dialect.Dialect`.

Messages of roles system, user, assistant (its ``tool_calls`` with ``arguments`` as an
object, its ``thinking``) and tool (``tool_name``; the call it answers is the last
assistant message's call of that name when it gives no ``tool_call_id``); ``tools``,
``format``, ``think``, ``options``, ``stream`` (true unless false) and ``keep_alive``. No
messages: the request only loads the model (with ``keep_alive: 0``, unloads it).
"""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

from proxy.core.fields import Fields, function_tools
from proxy.core.types import Message, ToolCall
from proxy.dialects.dialect import Ask, Limits
from proxy.dialects.ollama import answer, request
from proxy.dialects.ollama.answer import error_body, headers, new_id  # noqa: F401
from proxy.dialects.ollama.stream import OllamaStream, patient  # noqa: F401

ROLES = ("system", "user", "assistant", "tool")


def parse(body: Any, limits: Limits = Limits()) -> Ask:
    """Read an ``/api/chat`` body."""
    started = time.monotonic_ns()
    fields = Fields(body)
    messages = _messages(fields, limits)
    tools = function_tools(fields, limits.max_tools, limits.max_schema_size)
    return request.ask(
        fields,
        started,
        limits,
        messages=messages or (Message("user", ""),),
        tools=tools,
        load=not messages,
    )


def render(ask: Ask, id: str, model: str, completions: Sequence) -> dict:
    return answer.whole(ask, ask.notes.name, "chat", completions)


def stream(ask: Ask, id: str, model: str) -> OllamaStream:
    return OllamaStream(ask, ask.notes.name, "chat")


def _messages(fields: Fields, limits: Limits) -> tuple:
    messages, pending = [], []  # pending: the last assistant's calls not yet answered
    for index, item in enumerate(fields.objects("messages")):
        message = _message(item, index, pending, limits)
        if message.role == "assistant":
            pending = list(message.tool_calls)
        messages.append(message)
    return tuple(messages)


def _message(fields: Fields, index: int, pending: list, limits: Limits) -> Message:
    role = fields.string("role")
    if role not in ROLES:
        raise fields.fail("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    text = fields.raw("content")
    if text is not None and not isinstance(text, str):
        raise fields.fail("content", "must be a string")
    content = request.shown(fields, text or "", limits)
    calls = tuple(
        _call(call, f"call_{index}_{j}") for j, call in enumerate(fields.objects("tool_calls"))
    )
    if calls and role != "assistant":
        raise fields.fail("tool_calls", "are for assistant messages only")
    answered = None
    if role == "tool":
        answered = fields.string("tool_call_id") or _answered(pending, fields.string("tool_name"))
    return Message(
        role,
        content.text,
        name=fields.string("tool_name") if role == "tool" else None,
        tool_calls=calls,
        tool_call_id=answered,
        reasoning=(fields.string("thinking") or "") if role == "assistant" else "",
        images=tuple(content.images),
    )


def _call(fields: Fields, fallback_id: str) -> ToolCall:
    function = fields.object("function")
    if function is None:
        raise fields.fail("function", "is required")
    arguments = function.raw("arguments")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, dict):
        arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    elif not isinstance(arguments, str):
        raise function.fail("arguments", "must be an object")
    return ToolCall(fields.string("id") or fallback_id, function.required("name"), arguments)


def _answered(pending: list, name) -> str | None:
    """The id of the pending call a tool message answers: the first of its name, else the
    first; ``None`` when none is pending."""
    call = next((call for call in pending if call.name == name), None) or (
        pending[0] if pending else None
    )
    if call is None:
        return None
    pending.remove(call)
    return call.id
