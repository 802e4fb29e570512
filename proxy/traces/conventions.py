"""What the spans say, in OpenTelemetry's semantic conventions: HTTP's on the request's own span,
GenAI's on each attempt at a model. Pure.

A message's or a tool call's text goes on a span only where the operator opts in, as the
GenAI conventions ask (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``); a key's
secret or an upstream's credential never does, and a key's name only where the operator
allows it (``--otel-key-names on``).
"""

from __future__ import annotations

import json
from typing import Optional
from urllib.parse import urlsplit

# what each backend's engine is called as gen_ai.provider.name (the conventions' own names
# where they have one)
PROVIDERS = {
    "servercpp": "llama.cpp",
    "chatglm": "chatglm.cpp",
    "openai": "openai",
    "anthropic": "anthropic",
    "sdserver": "stable-diffusion.cpp",
}
CONTENT_OPT_IN = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def content_wanted(environ) -> bool:
    """Whether the operator opted in to messages on spans, as the GenAI conventions'
    instrumentations are told."""
    return environ.get(CONTENT_OPT_IN, "").strip().lower() == "true"


def said(request) -> dict:
    """What was asked, for a trace whose operator opted in to content: the messages, or the
    prompt."""
    if not request.messages:
        return {"gen_ai.input.messages": json.dumps([{"role": "user", "content": request.prompt}])}
    messages = []
    for message in request.messages:  # its text: never an image's or a sound's bytes
        told = {"role": message.role, "content": message.content}
        if message.tool_calls:
            told["tool_calls"] = [
                {"id": call.id, "name": call.name, "arguments": call.arguments}
                for call in message.tool_calls
            ]
        if message.tool_call_id:
            told["tool_call_id"] = message.tool_call_id
        messages.append(told)
    return {"gen_ai.input.messages": json.dumps(messages)}


def wrote(text: str) -> dict:
    """What a whole answer said, likewise."""
    return {"gen_ai.output.messages": json.dumps([{"role": "assistant", "content": text}])}


def operation(request) -> str:
    """``gen_ai.operation.name`` of a generation: a chat, or a completion of a prompt."""
    return "chat" if request.messages else "text_completion"


def attempt_name(operation_name: str, model: str) -> str:
    """A model span's name, as the conventions write it."""
    return f"{operation_name} {model}"


def attempt_attributes(request, backend: str, model: str, replica: str) -> dict:
    """An attempt's attributes as it starts: what was asked of which model, where."""
    attributes = {
        "gen_ai.operation.name": operation(request),
        "gen_ai.provider.name": PROVIDERS.get(backend, backend),
        "gen_ai.request.model": model,
    }
    asked = (
        ("gen_ai.request.max_tokens", request.max_tokens),
        ("gen_ai.request.temperature", request.sampling.temperature),
        ("gen_ai.request.top_p", request.sampling.top_p),
    )
    attributes.update((name, value) for name, value in asked if value is not None)
    attributes.update(server(replica))
    return attributes


def server(url: str) -> dict:
    """``server.address`` and ``server.port`` of an upstream's URL (none for a model the
    proxy loads itself, which has no URL)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return {}
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"server.address": parts.hostname, "server.port": port}


def placement(candidates: int, continuing: bool) -> dict:
    """The choice of a replica: among how many, for a conversation that goes on or not."""
    return {"oai_proxy.placement.candidates": candidates,
            "oai_proxy.placement.continuing": continuing}  # fmt: skip


def answered(model: str, usage, finish_reasons: tuple) -> dict:
    """What an attempt's answer tells: the model that made it, its tokens, why it ended."""
    attributes: dict = {"gen_ai.response.model": model}
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
    if finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(finish_reasons)
    return attributes


def tool_name(tool: str) -> str:
    """A hosted tool call's span name, as GenAI's conventions write it."""
    return f"execute_tool {tool}"


def tool_attributes(tool: str, call_id: str, server: str, arguments: Optional[str]) -> dict:
    """A hosted tool call's attributes: the tool, its call's id, the server of tools that
    runs it (its name in the models file, never its address), and its ``arguments`` where
    the operator opted in to content (``None``: not)."""
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                  "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "extension",
                  "oai_proxy.tool_server": server}  # fmt: skip
    if arguments is not None:
        attributes["gen_ai.tool.call.arguments"] = arguments
    return attributes


def request_attributes(method: str, route: str, path: str) -> dict:
    """The request's own span, as it comes: HTTP's conventions (the route, never the query,
    which may hold a key)."""
    return {"http.request.method": method, "http.route": route, "url.path": path}


def batch_line(batch: str, custom_id: str) -> dict:
    """A batch's line, on the span of its request: its batch and the id its client gave it."""
    return {"oai_proxy.batch.id": batch, "oai_proxy.batch.custom_id": custom_id}


def request_name(method: str, route: Optional[str]) -> str:
    """The request's span name: its method and route, as HTTP's conventions write it."""
    return f"{method} {route}" if route else method


def ended(status: int, asked: str, answered: str, key: Optional[str]) -> dict:
    """What the request's span tells once answered: its status, the model it ``asked`` for
    and the one that ``answered`` it (a fallback, it may be; "": none did), and the key's
    name where the operator allows it (``key``: ``None`` where not)."""
    attributes: dict = {"http.response.status_code": status}
    if asked:
        attributes["gen_ai.request.model"] = asked
    if answered:
        attributes["gen_ai.response.model"] = answered
    if key:
        attributes["oai_proxy.key"] = key
    return attributes


def failure(exc: BaseException) -> tuple:
    """``(error.type, description)`` of an attempt that failed: the proxy's error code and
    the message its client would read, never a traceback or an internal address."""
    code = getattr(exc, "code", None)
    kind = code if isinstance(code, str) and code else type(exc).__name__
    message = getattr(exc, "message", None)
    return kind, message if isinstance(message, str) else kind
