"""Chats for a server that speaks Anthropic's Messages API (Anthropic's own, an
Anthropic-compatible endpoint, llama-server's ``/v1/messages``): a :class:`GenerationRequest`
as the body of ``POST /v1/messages``. Pure.

A client that speaks the Messages API too has its own body sent on as it wrote it
(:meth:`~proxy.core.types.GenerationRequest.clients_own`). Otherwise, the system messages
become ``system``; an assistant's calls, ``tool_use`` blocks; tool results, ``tool_result``
blocks of the user's turn; messages of one role in a row, one message. What the Messages API
has no field for (OpenAI's penalties, seeds, logprobs, response formats, a grammar, a slot…)
is refused by the name the client gave it, unless the operator strips it (the model's
filters): then it is left out, and the answer names it.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Collection, Iterator, Optional

from proxy.core import images
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest, Message, Sampling

PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
API = "anthropic"  # the client API whose bodies this server takes verbatim
VERSION = "2023-06-01"  # the anthropic-version header every Messages server reads
DEFAULT_MAX_TOKENS = 4096  # the API requires a limit; a request that names none gets this
SAMPLERS = ("temperature", "top_p", "top_k")
# (what the request holds, the field a client names it by)
NOT_IN_THE_API = (
    ("grammar", "grammar"),
    ("slot", "id_slot"),
    ("cache_prompt", "cache_prompt"),
    ("n_keep", "n_keep"),
    ("suffix", "suffix"),
    ("logprobs", "logprobs"),
    ("response_format", "response_format"),
)
# every other sampler a client may set (logit_bias is refused on its own)
SAMPLERS_REFUSED = tuple(
    f.name for f in fields(Sampling) if f.name not in (*SAMPLERS, "logit_bias")
)
CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}


def refusal(
    request: GenerationRequest, label: str, leave_out: Collection[str] = ()
) -> Optional[InvalidRequestError]:
    """Why ``request`` cannot go to ``label`` (a Messages API server), or ``None``;
    ``leave_out``: the fields the operator has left out (its filters' ``strip``), which
    are not sent rather than refused."""

    def refused(param: str, what: str = "") -> InvalidRequestError:
        return InvalidRequestError(
            f"{param} cannot be served: {label} speaks Anthropic's Messages API, "
            f"which has no {what or param}",
            param=param,
        )

    if not request.is_chat:
        return refused("prompt", "raw prompt (send messages)")
    if request.sounds:
        return refused(request.sounds[0].field, "audio")
    for param in unsent(request):
        if param not in leave_out:
            return refused(param)
    for message in request.messages:
        for call in message.tool_calls:
            if not isinstance(_input(call.arguments), dict):
                return InvalidRequestError(
                    f"the arguments of the call {call.name!r} are not a JSON object, which "
                    f"the Messages API of {label} requires of a call",
                    param="messages",
                )
    return None


def unsent(request: GenerationRequest) -> Iterator[str]:
    """The name the client gave each field of ``request`` that the Messages API has no
    place for."""
    for field, param in NOT_IN_THE_API:
        if getattr(request, field) is not None:
            yield param
    if request.tokenize:
        yield "tokenize"
    yield from request.unread
    if request.template_kwargs:
        yield "chat_template_kwargs"
    if request.sampling.logit_bias:
        yield "logit_bias"
    for name in SAMPLERS_REFUSED:
        if getattr(request.sampling, name) is not None:
            yield name


def filled(request: GenerationRequest) -> tuple:
    """The fields of the body the proxy writes though ``request`` gave none: the limit the
    API requires."""
    return ("max_tokens",) if request.max_tokens is None else ()


def messages_body(request: GenerationRequest, model: str, *, stream: bool) -> dict:
    """The body of a chat for the server, which knows the model as ``model``."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    body: dict = {
        "model": model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns(request.messages),
        "stream": stream,
    }
    if system:
        body["system"] = system
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    body.update(
        (name, getattr(request.sampling, name))
        for name in SAMPLERS
        if getattr(request.sampling, name) is not None
    )
    if request.tools:
        body["tools"] = [
            {
                "name": tool["function"]["name"],
                **(
                    {"description": tool["function"]["description"]}
                    if tool["function"].get("description")
                    else {}
                ),
                "input_schema": tool["function"].get("parameters") or {"type": "object"},
            }
            for tool in request.tools
        ]
        choice = request.tool_choice
        chosen = (
            {"type": "tool", "name": choice.name}
            if choice.mode == "function"
            else dict(CHOICES[choice.mode])
        )
        if request.parallel_tool_calls is False and chosen["type"] != "none":
            chosen["disable_parallel_tool_use"] = True
        body["tool_choice"] = chosen
    return body


def turns(messages: tuple) -> list:
    """The conversation as the Messages API's turns: user and assistant, each a list of
    blocks, a role's messages in a row joined into one turn."""
    joined: list = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if joined and joined[-1]["role"] == role:
            joined[-1]["content"].extend(blocks)
        else:
            joined.append({"role": role, "content": blocks})
    return joined


def _blocks(message: Message) -> list:
    if message.role in ("tool", "function"):
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
        ]
    blocks: list = [
        {"type": "text", "text": piece}
        if isinstance(piece, str)
        else {
            "type": "image",
            "source": {"type": "base64", "media_type": piece.media_type, "data": piece.data},
        }
        for piece in images.pieces(message)
        if not isinstance(piece, str) or piece
    ]
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call.arguments)}
        )
    return blocks


def _input(arguments: str) -> object:
    """A call's arguments as the Messages API carries them (``{}`` when there are none;
    ``None`` when they are not JSON)."""
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return None
