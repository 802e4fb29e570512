"""Generations for an OpenAI-compatible upstream (vLLM, SGLang, LM Studio, Ollama's ``/v1``,
LiteLLM, a cloud API): a :class:`GenerationRequest` as the body of ``POST
/chat/completions``, or of ``POST /completions`` for a raw prompt (OpenAI's legacy
completions: ``prompt``, and ``logprobs`` as the number of alternatives). Pure.

What OpenAI's API defines goes as it defines it (``reasoning_effort`` too, wherever the
client gave it), and so do the two samplers every open engine reads beside it (``top_k``,
``min_p``), the chat template's other variables, and every field the proxy does not read
(an engine's own extensions, fields newer than the proxy) as the client sent it; a chat
client's own body goes whole (:func:`passed_body`). What only a server.cpp reads (a
grammar, a slot, ``cache_prompt``, ``n_keep``, its own samplers, a fill-in-the-middle
suffix, the prompt's token ids) is refused by the name the client gave it: a generic
upstream would ignore it or refuse it, and the answer would not say so. So is a
``response_format`` for a raw prompt: the legacy completions have none. A field the
operator strips (the model's filters) is left out instead, and the answer names it. A raw
prompt renders no chat template, so the template's variables (a model's defaults may set
them) have nothing to reach there.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Collection, Iterator, Mapping, Optional

from proxy.backends.wire.chatbody import message_body
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest, Sampling

SAMPLERS = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "top_k",
    "min_p",
)
BANNED = -100  # OpenAI's bias that bans a token
API = "chat"  # the client API whose bodies this server takes as they came
# what a chat client's body holds that the proxy answers for itself, never sent on: the
# number of choices (asked one at a time), the key's turn, the thinking switch (written into
# the template's variables) and the web search (run by the gateway)
OWN = ("n", "priority", "enable_thinking", "web_search_options")
TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")
# (what the request holds, the field a client names it by, why it cannot be honoured)
SERVERCPP_ONLY = (
    ("grammar", "grammar", "GBNF grammars"),
    ("slot", "id_slot", "slots"),
    ("cache_prompt", "cache_prompt", "prompt cache switch"),
    ("n_keep", "n_keep", "context shift"),
    ("suffix", "suffix", "fill-in-the-middle"),
)
# every other sampler a client may set (logit_bias goes as OpenAI's map)
SAMPLERS_REFUSED = tuple(
    f.name for f in fields(Sampling) if f.name not in (*SAMPLERS, "logit_bias")
)


def refusal(
    request: GenerationRequest, label: str, leave_out: Collection[str] = ()
) -> Optional[InvalidRequestError]:
    """Why ``request`` cannot go to ``label`` (an OpenAI-compatible upstream), or ``None``;
    ``leave_out``: the fields the operator has left out (its filters' ``strip``), which
    are not sent rather than refused."""
    if not request.is_chat and request.response_format is not None:
        return _refused(
            label, "response_format", "response_format for a raw prompt (send messages)"
        )
    for param, what in unsent(request):
        if param not in leave_out:
            return _refused(label, param, what)
    return None


def unsent(request: GenerationRequest) -> Iterator[tuple]:
    """``(the name the client gave, what it is)`` of each field of ``request`` that OpenAI's
    API has no place for."""
    for field, param, what in SERVERCPP_ONLY:
        if getattr(request, field) is not None:
            yield param, what
    if request.tokenize:
        yield "tokenize", "prompt token ids in its answers"
    for name in SAMPLERS_REFUSED:
        if getattr(request.sampling, name) is not None:
            yield name, f"{name} sampler"


def _refused(label: str, param: str, what: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{param} cannot be served: {label} speaks OpenAI's API, which has no {what}", param=param
    )


def chat_body(request: GenerationRequest, model: str, *, stream: bool) -> dict:
    """The body of a chat for the upstream, which knows the model as ``model``."""
    body: dict = {
        **request.unread,
        "model": model,
        "messages": [message_body(message) for message in request.messages],
        "stream": stream,
    }
    body.update(_tools(request))
    body.update(_generation(request, stream))
    if request.logprobs is not None:
        body.update(logprobs=True, top_logprobs=request.logprobs)
    if request.response_format is not None:
        if request.response_format.schema is None:
            body["response_format"] = {"type": "json_object"}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.response_format.schema},
            }
    body.update(_template(request))
    return body


def _template(request: GenerationRequest) -> dict:
    """The chat template's variables: ``reasoning_effort`` as OpenAI's own field (which the
    open engines read too), the others as ``chat_template_kwargs``."""
    variables = dict(request.template_kwargs)
    written = {}
    if "reasoning_effort" in variables:
        written["reasoning_effort"] = variables.pop("reasoning_effort")
    if variables:
        written["chat_template_kwargs"] = variables
    return written


def passed_body(
    own: Mapping[str, Any], request: GenerationRequest, model: str, *, stream: bool
) -> dict:
    """The client's own chat body for the upstream, which knows the model as ``model``: every
    field as it came, but the proxy's own (:data:`OWN`); ``model``, ``stream`` and
    ``stream_options`` set; the messages and tools written anew where the request holds
    others than the client sent (a later turn of the tool loop, images fetched, the tools
    the gateway runs); and what the model's defaults fill where the client set nothing."""
    body = {name: value for name, value in own.items() if name not in OWN}
    verbatim = request.verbatim
    if request.messages is not verbatim.messages:
        body["messages"] = [message_body(message) for message in request.messages]
    if request.tools is not verbatim.tools:
        for name in TOOL_FIELDS:
            body.pop(name, None)
        body.update(_tools(request))
    limit = "max_completion_tokens" in body
    for name, value in _generation(request, stream).items():
        if name not in body and not (limit and name == "max_tokens"):
            body[name] = value
    written = _template(request)
    if "reasoning_effort" in written:
        body.setdefault("reasoning_effort", written["reasoning_effort"])
    if "chat_template_kwargs" in written:  # the client's, with the model's defaults
        body["chat_template_kwargs"] = written["chat_template_kwargs"]
    options = own.get("stream_options") if stream else None
    if isinstance(options, dict):
        body["stream_options"] = {**options, "include_usage": True}
    elif not stream:
        body.pop("stream_options", None)
    body.update(model=model, stream=stream)
    return body


def prompt_body(request: GenerationRequest, model: str, *, stream: bool) -> dict:
    """The body of a raw prompt for the upstream, which knows the model as ``model``."""
    body: dict = {**request.unread, "model": model, "prompt": request.prompt, "stream": stream}
    body.update(_generation(request, stream))
    if request.logprobs is not None:
        body["logprobs"] = request.logprobs
    return body


def _generation(request: GenerationRequest, stream: bool) -> dict:
    """What chats and raw prompts ask alike: the usage of a stream, the limit, the stop
    words, the samplers."""
    asked: dict = {"stream_options": {"include_usage": True}} if stream else {}
    if request.max_tokens is not None:
        asked["max_tokens"] = request.max_tokens
    if request.stop:
        asked["stop"] = list(request.stop)
    sampling = request.sampling
    asked.update(
        (name, getattr(sampling, name)) for name in SAMPLERS if getattr(sampling, name) is not None
    )
    if sampling.logit_bias:
        asked["logit_bias"] = {
            str(token): BANNED if bias is False else bias for token, bias in sampling.logit_bias
        }
    return asked


def _tools(request: GenerationRequest) -> dict:
    """The tools offered, and whether the model may, must, or must call one of them, as
    OpenAI's API writes it."""
    if not request.tools:
        return {}
    choice = request.tool_choice
    offered: dict = {
        "tools": list(request.tools),
        "tool_choice": (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "function"
            else choice.mode
        ),
    }
    if request.parallel_tool_calls is not None:
        offered["parallel_tool_calls"] = request.parallel_tool_calls
    return offered
