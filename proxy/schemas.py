"""Read OpenAI request bodies into :class:`GenerationRequest` values, naming any bad field."""
from __future__ import annotations

import math
import re

import jsonschema
from dataclasses import dataclass
from typing import Any, Optional

from proxy.errors import InvalidRequestError
from proxy.types import GenerationRequest, Message, ResponseFormat, Sampling, ToolChoice

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_STOP_WORDS = 16
TOKEN_ID = re.compile(r"[0-9]{1,9}")
SURROGATE = re.compile("[\ud800-\udfff]")
NO_SAMPLING = Sampling()
AUTO = ToolChoice()


@dataclass(frozen=True)
class Choices:
    """How many answers a request wants, and how to deliver them."""

    requests: tuple  # one GenerationRequest per prompt; each is asked ``n`` times
    n: int
    stream: bool
    include_usage: bool
    echo: bool = False


class Fields:
    """Typed access to a JSON object's fields; a wrong type or range is a 400 naming it."""

    def __init__(self, body: Any, prefix: str = "") -> None:
        if not isinstance(body, dict):
            where = prefix.rstrip(".") or "the request body"
            raise InvalidRequestError(f"{where} must be a JSON object", param=prefix.rstrip(".") or None)
        self.body = body
        self.prefix = prefix

    def raw(self, name: str) -> Any:
        return self.body.get(name)

    def fail(self, name: str, message: str) -> InvalidRequestError:
        return InvalidRequestError(f"'{self.prefix}{name}' {message}", param=self.prefix + name)

    def number(self, name: str, low: float = -math.inf, high: float = math.inf) -> Optional[float]:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, "must be a number")
        try:
            value = float(value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise self.fail(name, "must be a finite number")
        if not low <= value <= high:
            raise self.fail(name, f"must be between {low:g} and {high:g}, got {value:g}")
        return value

    def integer(self, name: str, low: int = -(2 ** 63), high: int = 2 ** 63 - 1) -> Optional[int]:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, "must be an integer")
        if not low <= value <= high:
            raise self.fail(name, f"must be between {low} and {high}, got {value}")
        return value

    def boolean(self, name: str) -> Optional[bool]:
        value = self.body.get(name)
        if value is not None and not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def string(self, name: str) -> Optional[str]:
        value = self.body.get(name)
        if value is not None and not isinstance(value, str):
            raise self.fail(name, "must be a string")
        return value


# how each sampling field is read, and its bounds
SAMPLING_RULES = {
    "temperature": (Fields.number, 0, 2),
    "top_p": (Fields.number, 0, 1),
    "top_k": (Fields.integer, 0, 2 ** 63 - 1),
    "min_p": (Fields.number, 0, 1),
    "presence_penalty": (Fields.number, -2, 2),
    "frequency_penalty": (Fields.number, -2, 2),
    "repeat_penalty": (Fields.number, 0, 10),
    "seed": (Fields.integer, -1, 2 ** 32 - 1),
    "mirostat": (Fields.integer, 0, 2),
    "mirostat_tau": (Fields.number, 0, math.inf),
    "mirostat_eta": (Fields.number, 0, math.inf),
}


def lone_surrogate_at(value: Any) -> Optional[str]:
    """Where ``value`` holds a lone UTF-16 surrogate, as a field path; ``None`` if nowhere.

    JSON's ``\\ud800`` escapes decode to text no UTF-8 writer can write: no server must get it.
    """
    todo = [("", value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return path or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                if SURROGATE.search(key):
                    return path or "body"
                todo.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            todo.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return None


def parse_chat(body: Any, *, max_choices: int) -> Choices:
    """Read a ``/v1/chat/completions`` body."""
    fields = Fields(body)
    messages = _messages(fields)
    logprobs = None
    if fields.boolean("logprobs"):
        logprobs = fields.integer("top_logprobs", 0, 20) or 0
    elif fields.raw("top_logprobs") is not None:
        fields.integer("top_logprobs", 0, 20)
    request = _generation(fields, messages=messages, logprobs=logprobs)
    return _choices(fields, (request,), max_choices)


def parse_completion(body: Any, *, max_choices: int) -> Choices:
    """Read a ``/v1/completions`` body; a list of prompts gives choices for each."""
    fields = Fields(body)
    prompt = fields.raw("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = prompt
    elif prompt is None:
        raise fields.fail("prompt", "is required")
    else:
        raise fields.fail("prompt", "must be a string or a list of strings "
                                    "(token-id prompts are not supported)")
    if fields.raw("tools") is not None:
        raise fields.fail("tools", "need a chat: send them to /v1/chat/completions")
    if fields.string("suffix"):
        raise fields.fail("suffix", "is not supported by this server")
    best_of = fields.integer("best_of", 1, max_choices)
    logprobs = fields.integer("logprobs", 0, 20)
    requests = tuple(_generation(fields, prompt=text, logprobs=logprobs) for text in prompts)
    choices = _choices(fields, requests, max_choices)
    if best_of is not None and best_of != choices.n:
        raise fields.fail("best_of", "other than n is not supported by this server")
    return Choices(requests, choices.n, choices.stream, choices.include_usage,
                   echo=bool(fields.boolean("echo")))


def _choices(fields: Fields, requests: tuple, max_choices: int) -> Choices:
    n = fields.integer("n", 1, max_choices) or 1
    stream = bool(fields.boolean("stream"))
    include_usage = False
    if fields.raw("stream_options") is not None:
        options = Fields(fields.raw("stream_options"), "stream_options.")
        include_usage = bool(options.boolean("include_usage"))
    if len(requests) * n > max_choices:
        raise fields.fail("n", f"times the number of prompts must be at most {max_choices}")
    return Choices(requests, n, stream, include_usage)


def _generation(fields: Fields, **kwargs) -> GenerationRequest:
    max_tokens = fields.integer("max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = fields.integer("max_tokens", 1)
    response_format = _response_format(fields)
    return GenerationRequest(
        model=fields.string("model") or None,
        max_tokens=max_tokens,
        stop=_stop(fields),
        sampling=_sampling(fields),
        response_format=response_format,
        n_keep=fields.integer("n_keep", -1),
        cache_prompt=fields.boolean("cache_prompt"),
        slot=_slot(fields),
        tokenize=bool(fields.boolean("tokenize")),
        tools=_tools(fields),
        tool_choice=_tool_choice(fields),
        parallel_tool_calls=fields.boolean("parallel_tool_calls") is not False,
        grammar=_grammar(fields, response_format),
        **kwargs,
    )


def _messages(fields: Fields) -> tuple:
    raw = fields.raw("messages")
    if not isinstance(raw, list):
        raise fields.fail("messages", "must be a non-empty list of messages")
    if not raw:
        raise fields.fail("messages", "must not be empty")
    return tuple(_message(Fields(item, f"messages[{i}]."), i) for i, item in enumerate(raw))


def _message(fields: Fields, index: int) -> Message:
    role = fields.string("role")
    if role is None:
        raise fields.fail("role", "is required")
    if role not in ROLES:
        raise fields.fail("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    tool_calls = fields.raw("tool_calls")
    if tool_calls is not None and not (role == "assistant" and isinstance(tool_calls, list)):
        raise fields.fail("tool_calls", "must be a list, on assistant messages only")
    content = _content(fields, allow_null=role == "assistant" and bool(tool_calls))
    return Message(role=role, content=content, name=fields.string("name"),
                   tool_calls=tuple(tool_calls or ()),
                   tool_call_id=fields.string("tool_call_id"))


def _content(fields: Fields, *, allow_null: bool) -> str:
    content = fields.raw("content")
    if isinstance(content, str):
        return content
    if content is None:
        if allow_null:
            return ""
        raise fields.fail("content", "is required")
    if not isinstance(content, list):
        raise fields.fail("content", "must be a string or a list of content parts")
    texts = []
    for j, part in enumerate(content):
        part_fields = Fields(part, f"{fields.prefix}content[{j}].")
        kind = part_fields.string("type")
        if kind not in ("text", "input_text"):
            raise part_fields.fail("type", f"{kind!r} is not supported; only text parts are")
        text = part_fields.string("text")
        if text is None:
            raise part_fields.fail("text", "is required")
        texts.append(text)
    return "\n".join(texts)


def _stop(fields: Fields) -> tuple:
    stop = fields.raw("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(word, str) for word in stop):
        raise fields.fail("stop", "must be a string or a list of strings")
    if len(stop) > MAX_STOP_WORDS:
        raise fields.fail("stop", f"may hold at most {MAX_STOP_WORDS} strings")
    return tuple(word for word in stop if word)


def _sampling(fields: Fields) -> Sampling:
    """The sampling fields the client set, each read by its rule (most requests set few)."""
    body = fields.body
    values = {name: read(fields, name, low, high)
              for name, (read, low, high) in SAMPLING_RULES.items() if name in body}
    if not values and "logit_bias" not in body:
        return NO_SAMPLING
    return Sampling(**values, logit_bias=_logit_bias(fields))


def _logit_bias(fields: Fields) -> tuple:
    raw = fields.raw("logit_bias")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise fields.fail("logit_bias", "must be an object of token id to bias")
    pairs = []
    for key, bias in raw.items():
        if not TOKEN_ID.fullmatch(key):
            raise fields.fail("logit_bias", f"keys must be token ids, got {key[:20]!r}")
        if bias is False:
            pairs.append((int(key), False))
            continue
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
            raise fields.fail("logit_bias", f"values must be numbers from -100 to 100, "
                                            f"got {bias!r} for {key}")
        pairs.append((int(key), float(bias)))
    return tuple(pairs)


def _response_format(fields: Fields) -> Optional[ResponseFormat]:
    raw = fields.raw("response_format")
    if raw is None:
        return None
    options = Fields(raw, "response_format.")
    kind = options.string("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = Fields(options.raw("json_schema"), "response_format.json_schema.")
        schema = spec.raw("schema")
        if not isinstance(schema, dict):
            raise spec.fail("schema", "must be a JSON Schema object")
        _check_schema(spec, "schema", schema)
        return ResponseFormat("json_schema", schema)
    raise options.fail("type", "must be text, json_object or json_schema")


def _check_schema(fields: Fields, name: str, schema: dict) -> None:
    """A schema the ``jsonschema`` package itself rejects is the client's mistake."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise fields.fail(name, f"is not a valid JSON Schema: {exc.message} "
                                f"(at {where or 'the top'})") from None
    except (RecursionError, ValueError, TypeError, LookupError) as exc:
        raise fields.fail(name, f"is not a valid JSON Schema ({type(exc).__name__})") from None


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


def _tools(fields: Fields) -> tuple:
    tools = fields.raw("tools")
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise fields.fail("tools", "must be a list")
    for i, tool in enumerate(tools):
        function = Fields(Fields(tool, f"tools[{i}].").raw("function"), f"tools[{i}].function.")
        if not function.string("name"):
            raise function.fail("name", "is required")
    if fields.raw("tool_choice") == "none":
        return ()
    return tuple(tools)


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
        name = Fields(Fields(raw, "tool_choice.").raw("function"),
                      "tool_choice.function.").string("name")
        offered = [tool["function"]["name"] for tool in fields.raw("tools") or ()]
        if name and name in offered:
            return ToolChoice("function", name)
        raise fields.fail("tool_choice", f"names the function {name!r}, which is not among "
                                         f"the tools ({', '.join(offered) or 'none given'})")
    raise fields.fail("tool_choice", "must be none, auto, required, or "
                                     "{\"type\": \"function\", \"function\": {\"name\": …}}")


@dataclass(frozen=True)
class EmbeddingRequest:
    """Texts (or token-id lists) to embed, and how to encode the vectors."""

    inputs: tuple
    model: Optional[str]
    encoding_format: str


def parse_embeddings(body: Any, *, max_batch: int) -> EmbeddingRequest:
    """Read a ``/v1/embeddings`` body: a string, strings, token ids or lists of token ids."""
    fields = Fields(body)
    raw = fields.raw("input")
    if isinstance(raw, str) or _is_token_list(raw):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) or _is_token_list(x)
                                               for x in raw):
        inputs = raw
    else:
        raise fields.fail("input", "must be a string, a list of strings, a list of token "
                                   "ids or a list of such lists, and not empty")
    if len(inputs) > max_batch:
        raise fields.fail("input", f"may hold at most {max_batch} items, got {len(inputs)}")
    if any(not item for item in inputs):
        raise fields.fail("input", "must not contain empty items")
    encoding = fields.string("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise fields.fail("encoding_format", "must be float or base64")
    return EmbeddingRequest(tuple(inputs), fields.string("model") or None, encoding)


def parse_text(body: Any, *names: str) -> str:
    """Read the text field of a tokenize request, under whichever name the client uses."""
    fields = Fields(body)
    for name in names:
        if fields.raw(name) is not None:
            return fields.string(name)
    raise fields.fail(names[0], "is required")


def parse_model(body: Any) -> Optional[str]:
    """The model a request names, if any."""
    return Fields(body).string("model") or None


def parse_token_ids(body: Any) -> list:
    fields = Fields(body)
    tokens = fields.raw("tokens")
    if not _is_token_list(tokens) and tokens != []:
        raise fields.fail("tokens", "must be a list of token ids")
    return tokens


def _is_token_list(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value))
