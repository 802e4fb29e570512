"""Messages answers: a whole ``message``, usage, stop reasons and errors as Anthropic writes
them. The hosted tools the gateway ran for it come before its text, in the order they ran
(see :mod:`.runs`): a whole answer's text is the text of every turn, joined."""

from __future__ import annotations

import hashlib
import json
from typing import Optional, Sequence

from proxy.core.answers import Completion, Usage
from proxy.core.errors import ContextLengthError, ProxyError
from proxy.core.tooluse import ToolRun
from proxy.core.types import ToolCall
from proxy.dialects.anthropic.request import MessagesNotes
from proxy.dialects.anthropic.runs import blocks, server_usage
from proxy.dialects.dialect import Ask

# the error type each status stands for, as Anthropic names them
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}
STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}


def render(ask: Ask, id: str, model: str, completions: Sequence[Completion]) -> dict:
    """A whole ``message``: the upstream's own, where it wrote one in this API (the model
    named as the client asked for it)."""
    (completion,) = completions
    if completion.verbatim is not None:
        return {**completion.verbatim, "model": model}
    content = []
    if ask.notes.thinking and completion.reasoning:
        content.append(
            {
                "type": "thinking",
                "thinking": completion.reasoning,
                "signature": signature(completion.reasoning),
            }
        )
    runs = [run for run in completion.runs if isinstance(run, ToolRun)]
    for n, run in enumerate(runs):
        content += blocks(run, n)
    if completion.text or not (content or completion.tool_calls):
        content.append({"type": "text", "text": completion.text})
    content += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call)}
        for call in completion.tool_calls
    ]
    reason, sequence = stop_reason(ask.notes, completion.finish_reason, completion.stop_sequence)
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_body(completion.usage, runs),
    }


def render_count(tokens: int) -> dict:
    return {"input_tokens": tokens}


def stop_reason(notes: MessagesNotes, reason: str, stop_sequence: Optional[str]) -> tuple:
    """``(stop_reason, stop_sequence)``: a stop word counts as the client's only when it is
    one of its ``stop_sequences`` (the template's own end the turn)."""
    if reason == "stop" and stop_sequence in notes.stop_sequences:
        return "stop_sequence", stop_sequence
    return STOP_REASONS.get(reason, "end_turn"), None


def usage_body(usage: Usage, runs: Sequence = ()) -> dict:
    """Anthropic counts cached prompt tokens apart from the rest of the input, and the
    searches and fetches of the hosted ``runs`` apart from the tokens."""
    cached = usage.cached_tokens or 0
    body = {
        "input_tokens": usage.prompt_tokens - cached,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }
    server = server_usage(runs)
    if server is not None:
        body["server_tool_use"] = server
    return body


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
        message = (
            f"prompt is too long: {error.prompt_tokens} tokens > {error.limit} maximum"
            if error.prompt_tokens is not None and error.limit is not None
            else "prompt is too long for the model's context"
        )
    return {"type": "error", "error": {"type": error_type(error), "message": message}}


def error_type(error: ProxyError) -> str:
    return ERROR_TYPES.get(error.status, "api_error")
