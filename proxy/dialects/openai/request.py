"""What OpenAI's chat completions and completions read alike: ``n``, ``stream`` and
``stream_options``, the token limit, sampling and stop words, ``response_format`` and
server.cpp's ``grammar``, tools and ``tool_choice``, and server.cpp's own extras. Every
other field is the engine's to read (its own extensions, OpenAI's fields the proxy has no
use for, fields newer than it): kept as it came, to be sent on (``unread``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from proxy.core.fields import (
    SAMPLING_RULES,
    Fields,
    chosen_function,
    function_tools,
    response_format,
    sampling,
    sized_schema,
    stop_words,
)
from proxy.core.types import GenerationRequest, ResponseFormat, ToolChoice
from proxy.dialects.dialect import Ask, Limits

AUTO = ToolChoice()
# the fields of both APIs the proxy reads itself (``priority``: the key's turn, LiteLLM's field)
READ = frozenset(
    {
        "model",
        "n",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "n_predict",
        "stop",
        *SAMPLING_RULES,
        "logit_bias",
        "response_format",
        "n_keep",
        "cache_prompt",
        "id_slot",
        "slot_id",
        "tokenize",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "grammar",
        "priority",
    }
)
# the unread fields a server compiles into the grammar of its answer (llama-server's own
# ``json_schema``): bounded as a schema the proxy reads is (--max-schema-size)
COMPILED = ("json_schema",)


@dataclass(frozen=True)
class Delivery:
    """How an OpenAI client wants its answer delivered (an :class:`Ask`'s notes)."""

    include_usage: bool = False  # a stream ends with a usage chunk
    echo: bool = False  # a completion begins with its prompt


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


def generation_request(
    fields: Fields, limits: Limits, read: frozenset, **kwargs
) -> GenerationRequest:
    """The fields chat completions and completions share, server.cpp's extras, and those
    of the body neither API's proxy ``read``s."""
    max_tokens = fields.integer("max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = fields.integer("max_tokens", 1)
    if fields.body.get("n_predict") is not None:  # llama-server's word for it, as it reads it
        if max_tokens is not None:
            raise fields.fail("n_predict", "and max_tokens say the same: send one of them")
        max_tokens = fields.integer("n_predict", 1)
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
        grammar=_grammar(fields, response_format, limits),
        unread=unread(fields, read, limits),
        **kwargs,
    )


def unread(fields: Fields, read: frozenset, limits: Limits) -> dict:
    """The fields of the body that are not in ``read``, as they came; those a server
    compiles bounded as the schemas the proxy reads."""
    found = {name: value for name, value in fields.body.items() if name not in read}
    for name in COMPILED:
        if name in found:
            sized_schema(fields, name, found[name], limits.max_schema_size)
    return found


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


def _grammar(
    fields: Fields, response_format: Optional[ResponseFormat], limits: Limits
) -> Optional[str]:
    """A GBNF grammar for server.cpp (its own extension of the API), at most
    ``--max-schema-size`` bytes: the server compiles it as it compiles a schema."""
    grammar = fields.string("grammar")
    if not grammar:
        return None
    if response_format is not None:
        raise fields.fail("grammar", "cannot be combined with response_format")
    size = len(grammar.encode("utf-8", "surrogatepass"))
    if size > limits.max_schema_size:
        raise fields.fail(
            "grammar", f"is a grammar of {size} bytes; at most {limits.max_schema_size} are "
            "accepted (--max-schema-size)"
        )  # fmt: skip
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
