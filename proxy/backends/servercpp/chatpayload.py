"""Chats for the server's own chat layer: a :class:`GenerationRequest` as the body
llama-server's ``POST /v1/chat/completions`` reads. Pure.

A server that has a chat layer renders the prompt from the model's own chat template (its
tools, its thinking switch, its family's quirks) and reads what the model writes back with
the parser it keeps for that family (:mod:`.chatparse`), as it would for any of its own
clients. What the server's chat route does not do in the way a client asked stays the
proxy's:

- one named function (``tool_choice: {type: function}``) is offered alone, as ``required``
  (the server reads only the string forms of ``tool_choice``);
- a stream asks for the prompt's progress, so that the prompt's token count comes with the
  first chunk (a Messages stream's ``message_start`` carries it);
- the client's stop words: the server's answer would not say which of them ended it, so
  the proxy stops at them itself (:func:`proxy.backends.structured.stops.stopping`), the
  usage so far read from the timings the server then sends with every chunk;
- earlier calls' ids reach a template that takes only Mistral's ids as such ids
  (:mod:`proxy.backends.structured.callids`).
"""

from __future__ import annotations

from proxy.backends.servercpp.payload import sampling_fields
from proxy.backends.structured.callids import template_id
from proxy.backends.wire.chatbody import message_body
from proxy.core.types import GenerationRequest

PATH = "/v1/chat/completions"
COUNT_PATH = "/v1/chat/completions/input_tokens"


def chat_payload(
    request: GenerationRequest, *, stream: bool, reasoning: bool = True, short_ids: bool = False
) -> dict:
    """The body of a chat request. ``reasoning``: thoughts are told from the answer (as the
    server is set to; else they stay in it); ``short_ids``: the template takes only call ids
    of nine letters and digits. Every other choice is left to the server and the template, as
    they would be for the server's own clients."""
    payload: dict = {
        **request.unread,  # the server's own extensions, as the client sent them
        "messages": [message_body(m, template_id if short_ids else str) for m in request.messages],
        "stream": stream,
    }
    if not reasoning:
        payload["reasoning_format"] = "none"
    if stream:
        payload["stream_options"] = {"include_usage": True}
        payload["return_progress"] = True
    payload.update(_tools(request))
    if request.max_tokens is not None:
        payload["max_tokens"] = request.max_tokens
    if request.stop:  # the proxy stops at them itself, to tell which ended the answer
        payload["timings_per_token"] = True
    payload.update(sampling_fields(request.sampling))
    if request.logprobs is not None:
        # at least one, so the chosen token's own probability comes back
        payload.update(logprobs=True, top_logprobs=max(request.logprobs, 1))
    if request.response_format is not None:
        schema = request.response_format.schema or {"type": "object"}
        payload["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
    elif request.grammar is not None:
        payload["grammar"] = request.grammar
    if request.n_keep is not None:
        payload["n_keep"] = request.n_keep
    if request.cache_prompt is not None:
        payload["cache_prompt"] = request.cache_prompt
    if request.slot is not None:
        payload["id_slot"] = request.slot
    if request.template_kwargs:
        payload["chat_template_kwargs"] = dict(request.template_kwargs)
    return payload


def count_payload(request: GenerationRequest, **options) -> dict:
    """The body that renders ``request``'s prompt without generating (to count it)."""
    payload = chat_payload(request, stream=False, **options)
    return {
        key: payload[key]
        for key in (
            "messages",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "chat_template_kwargs",
            "reasoning_format",
        )
        if key in payload
    }


def _tools(request: GenerationRequest) -> dict:
    """The tools offered, and whether the model may, must, or must call one of them."""
    if not request.tools:
        return {}
    choice = request.tool_choice
    if choice.mode == "function":
        tools = [tool for tool in request.tools if tool["function"]["name"] == choice.name]
        return {"tools": tools, "tool_choice": "required", "parallel_tool_calls": False}
    offered: dict = {"tools": list(request.tools), "tool_choice": choice.mode}
    if request.parallel_tool_calls is not None:
        offered["parallel_tool_calls"] = request.parallel_tool_calls
    return offered
