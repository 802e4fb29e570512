"""What OpenAI's chat completions and completions share: request fields, ids, logprobs,
usage, errors, and the stream of choices."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import orjson

from proxy.core.errors import ProxyError
from proxy.core.events import UsageReport, Waiting
from proxy.core.fields import (
    Fields,
    chosen_function,
    function_tools,
    response_format,
    sampling,
    stop_words,
)
from proxy.core.sse import COMMENT, DONE, EVENT_STREAM, encode_event
from proxy.core.types import (
    Completion,
    GenerationRequest,
    ResponseFormat,
    TokenLogprob,
    ToolChoice,
    Usage,
)
from proxy.dialects.dialect import Ask, Limits
from proxy.dialects.streaming import EventRenderer

AUTO = ToolChoice()
patient = False  # a stream keeps its client company only while a server starts


@dataclass(frozen=True)
class Delivery:
    """How an OpenAI client wants its answer delivered (an :class:`Ask`'s notes)."""

    include_usage: bool = False  # a stream ends with a usage chunk
    echo: bool = False  # a completion begins with its prompt


def new_id(prefix: str) -> str:
    """A unique response id; one per response, shared by all its chunks (128 random bits,
    as a UUID has, without building one)."""
    return f"{prefix}-{os.urandom(16).hex()}"


def now() -> int:
    return int(time.time())


# -- requests -------------------------------------------------------------------------------


def ask(fields: Fields, requests: tuple, limits: Limits, echo: bool = False) -> Ask:
    """``n``, ``stream`` and ``stream_options`` around the request's prompts."""
    n = fields.integer("n", 1, limits.max_choices) or 1
    include_usage = False
    options = fields.object("stream_options")
    if options is not None:
        include_usage = bool(options.boolean("include_usage"))
    if len(requests) * n > limits.max_choices:
        raise fields.fail("n", f"times the number of prompts must be at most {limits.max_choices}")
    return Ask(requests, n, bool(fields.boolean("stream")), Delivery(include_usage, echo))


def generation_request(fields: Fields, limits: Limits, **kwargs) -> GenerationRequest:
    """The fields chat completions and completions share, and server.cpp's extras."""
    max_tokens = fields.integer("max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = fields.integer("max_tokens", 1)
    response_format = _response_format(fields, limits)
    return GenerationRequest(
        model=fields.string("model") or None,
        max_tokens=max_tokens,
        stop=stop_words(fields),
        sampling=sampling(fields),
        response_format=response_format,
        n_keep=fields.integer("n_keep", -1),
        cache_prompt=fields.boolean("cache_prompt"),
        slot=_slot(fields),
        tokenize=bool(fields.boolean("tokenize")),
        tools=_tools(fields, limits),
        tool_choice=_tool_choice(fields),
        parallel_tool_calls=fields.boolean("parallel_tool_calls"),
        grammar=_grammar(fields, response_format),
        **kwargs,
    )


def _response_format(fields: Fields, limits: Limits) -> Optional[ResponseFormat]:
    options = fields.object("response_format")
    if options is None:
        return None
    kind = options.string("type")
    schema_at = (
        Fields(options.raw("json_schema"), "response_format.json_schema.")
        if kind == "json_schema"
        else options
    )
    return response_format(kind, options, schema_at, limits.max_schema_size)


def _grammar(fields: Fields, response_format: Optional[ResponseFormat]) -> Optional[str]:
    """A GBNF grammar for server.cpp (its own extension of the API)."""
    grammar = fields.string("grammar")
    if not grammar:
        return None
    if response_format is not None:
        raise fields.fail("grammar", "cannot be combined with response_format")
    return grammar


def _slot(fields: Fields) -> Optional[int]:
    for name in ("id_slot", "slot_id"):
        value = fields.integer(name, -1)
        if value is not None:
            return value
    return None


def _tools(fields: Fields, limits: Limits) -> tuple:
    tools = function_tools(fields, limits.max_tools, limits.max_schema_size)
    return () if fields.raw("tool_choice") == "none" else tools


def _tool_choice(fields: Fields) -> ToolChoice:
    """``auto`` (the default), ``required``, or one named function that must be called."""
    raw = fields.raw("tool_choice")
    if raw is None or raw in ("auto", "none"):
        return AUTO
    if not fields.raw("tools"):
        raise fields.fail("tool_choice", "needs tools to choose from")
    if raw == "required":
        return ToolChoice("required")
    if isinstance(raw, dict):
        function = Fields(Fields(raw, "tool_choice.").raw("function"), "tool_choice.function.")
        return chosen_function(function, fields.raw("tools"))
    raise fields.fail(
        "tool_choice",
        'must be none, auto, required, or {"type": "function", "function": {"name": …}}',
    )


# -- answers ------------------------------------------------------------------------------


def usage_body(usage: Usage) -> dict:
    body = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def total_usage(completions: Sequence[Completion]) -> Usage:
    return sum((completion.usage for completion in completions), Usage())


def chat_logprobs(logprobs: Sequence[TokenLogprob]) -> dict:
    return {
        "content": [
            {
                "token": item.token,
                "logprob": item.logprob,
                "bytes": _bytes(item.token, item.bytes),
                "top_logprobs": [
                    {"token": token, "logprob": lp, "bytes": _bytes(token, raw)}
                    for token, lp, raw in item.top
                ],
            }
            for item in logprobs
        ]
    }


def text_logprobs(logprobs: Sequence[TokenLogprob]) -> dict:
    offsets, offset = [], 0
    for item in logprobs:
        offsets.append(offset)
        offset += len(item.token)
    return {
        "tokens": [item.token for item in logprobs],
        "token_logprobs": [item.logprob for item in logprobs],
        "top_logprobs": [{token: lp for token, lp, _ in item.top} for item in logprobs],
        "text_offset": offsets,
    }


def _bytes(token: str, raw) -> list:
    return list(raw) if raw is not None else list(token.encode("utf-8"))


def historic_extras(body: dict, completions: Sequence[Completion]) -> dict:
    """Fields the historic shim sent, which its users' scripts still read."""
    body["truncated"] = any(c.truncated for c in completions)
    if completions and completions[0].prompt_tokens is not None:
        body["promptToken"] = list(completions[0].prompt_tokens)
    return body


def model_list(models) -> dict:
    """The models, each with what it can do (``capabilities``: completion, tools, thinking,
    vision, rerank), as Ollama's ``/api/show`` says it too."""
    return {
        "object": "list",
        "data": [
            {
                "id": m.id,
                "object": "model",
                "created": 0,
                "owned_by": m.owned_by,
                "capabilities": list(m.card.capabilities),
                **m.meta,
            }
            for m in models
        ],
    }


def error_body(error: ProxyError) -> dict:
    """OpenAI's error shape."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def headers(ask: Ask) -> dict:
    return {}


class Wire:
    """OpenAI's stream framing: ``data:`` lines, an error event, then ``data: [DONE]``."""

    encode = staticmethod(encode_event)
    mimetype = EVENT_STREAM
    end = DONE

    @staticmethod
    def failure(error: ProxyError) -> list:
        return [error_body(error)]


class ChoicesStream(EventRenderer, Wire):
    """A stream of chunks, choice after choice, each chunk naming the answer's id, model and
    time; a usage chunk last when ``stream_options.include_usage`` asks for one.

    A subclass says what its chunks hold (:meth:`chunk`) and what each event adds.
    """

    object = ""  # the chunks' ``object``

    def __init__(self, ask: Ask, id: str, model: str) -> None:
        self.id = id
        self.model = model
        self.created = now()
        self.include_usage = ask.notes.include_usage
        self.index = 0  # the choice being streamed
        self.begun = False  # its first chunk has gone out
        self.usage = Usage()
        self._heads: dict = {}  # (choice, field) -> the bytes its chunks begin with

    def chunk(self, choice: dict) -> dict:
        """A chunk of the answer, holding ``choice`` of the choice being streamed."""
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": [{"index": self.index, **choice}],
        }

    def head(self, field: bytes) -> bytes:
        """The framed bytes of a chunk of the choice being streamed, up to ``field``'s value
        (as :meth:`chunk` and :func:`encode_event` make them): made once a choice, for the
        text that follows them in every token's chunk."""
        heads = self._heads
        if (self.index, field) not in heads:
            heads[self.index, field] = (
                b'data: {"id":'
                + orjson.dumps(self.id)
                + b',"object":"'
                + self.object.encode()
                + b'","created":%d,"model":' % self.created
                + orjson.dumps(self.model)
                + b',"choices":[{"index":%d,' % self.index
                + field
            )
        return heads[self.index, field]

    def waiting(self, event: Waiting, out: list) -> None:
        out.append(COMMENT)

    def usage_reported(self, event: UsageReport, out: list) -> None:
        self.usage += event.usage

    def next_choice(self) -> None:
        self.index += 1
        self.begun = False

    def closing(self) -> list:
        """The usage chunk, when asked for."""
        if not self.include_usage:
            return []
        return [
            [
                {
                    "id": self.id,
                    "object": self.object,
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage_body(self.usage),
                }
            ]
        ]
