"""Fields read from JSON bodies: typed reading, a wrong type or range a 400 naming the field,
and the fields many APIs share (sampling, stop words, template variables, tools, schemas).

Shared by every dialect and by the models file's ``defaults`` (which take the request fields'
own rules), so that a field means and checks the same wherever it is written.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Optional, Sequence

import jsonschema
import orjson

from proxy.core.errors import InvalidRequestError
from proxy.core.types import ResponseFormat, Sampling, ToolCall, ToolChoice

MAX_STOP_WORDS = 16
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
TOKEN_ID = re.compile(r"[0-9]{1,9}")
NO_SAMPLING = Sampling()
# why a body that asks for audio output is refused
IN_TEXT = "this gateway answers in text and does not carry audio answers back"


LONGEST_NAME = 64  # characters of a field's name an error repeats


class Fields:
    """Typed access to a JSON object's fields; a wrong type or range is a 400 naming it."""

    def __init__(self, body: Any, prefix: str = "") -> None:
        if not isinstance(body, dict):
            where = prefix.rstrip(".") or "the request body"
            raise InvalidRequestError(
                f"{where} must be a JSON object", param=prefix.rstrip(".") or None
            )
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

    def integer(self, name: str, low: int = -(2**63), high: int = 2**63 - 1) -> Optional[int]:
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

    def text(self, name: str) -> str:
        """A string that must be there (it may be empty)."""
        value = self.string(name)
        if value is None:
            raise self.fail(name, "is required")
        return value

    def required(self, name: str) -> str:
        """A string that must be there and not be empty."""
        value = self.string(name)
        if not value:
            raise self.fail(name, "is required")
        return value

    def object(self, name: str) -> Optional["Fields"]:
        """The field as :class:`Fields` of its own, or ``None`` when it is absent."""
        value = self.body.get(name)
        return None if value is None else Fields(value, f"{self.prefix}{name}.")

    def objects(self, name: str) -> list:
        """A list field's objects, each as :class:`Fields`; ``[]`` when it is absent."""
        value = self.body.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(name, "must be a list")
        return [Fields(item, f"{self.prefix}{name}[{i}].") for i, item in enumerate(value)]


def shown_name(name: str) -> str:
    """A field's name as an error repeats it: a long one cut, the empty one quoted."""
    return (name if len(name) <= LONGEST_NAME else name[:LONGEST_NAME] + "…") or '""'


def asked_model(body: Any) -> Optional[str]:
    """The model a request body names, if any (``model``, or the ``name`` of Ollama's older
    bodies); a model that is not a string is a 400."""
    if not isinstance(body, dict):
        return None
    fields = Fields(body)
    return fields.string("model") or fields.string("name") or None


# how each sampling field is read, and its bounds
SAMPLING_RULES = {
    "temperature": (Fields.number, 0, 2),
    "top_p": (Fields.number, 0, 1),
    "top_k": (Fields.integer, 0, 2**63 - 1),
    "min_p": (Fields.number, 0, 1),
    "presence_penalty": (Fields.number, -2, 2),
    "frequency_penalty": (Fields.number, -2, 2),
    "repeat_penalty": (Fields.number, 0, 10),
    "seed": (Fields.integer, -1, 2**32 - 1),
    "mirostat": (Fields.integer, 0, 2),
    "mirostat_tau": (Fields.number, 0, math.inf),
    "mirostat_eta": (Fields.number, 0, math.inf),
}


def sampling(fields: Fields) -> Sampling:
    """The sampling fields the client set, each read by its rule (most requests set few)."""
    body = fields.body
    values = {
        name: read(fields, name, low, high)
        for name, (read, low, high) in SAMPLING_RULES.items()
        if name in body
    }
    if not values and "logit_bias" not in body:
        return NO_SAMPLING
    return Sampling(**values, logit_bias=logit_bias(fields))


def logit_bias(fields: Fields) -> tuple:
    """``{"<token id>": bias}`` as ``((id, bias), …)``; ``false`` bans the token."""
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
            raise fields.fail(
                "logit_bias", f"values must be numbers from -100 to 100, got {bias!r} for {key}"
            )
        pairs.append((int(key), float(bias)))
    return tuple(pairs)


def stop_words(fields: Fields, name: str = "stop") -> tuple:
    """A string or a list of strings, without empty ones."""
    stop = fields.raw(name)
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(word, str) for word in stop):
        raise fields.fail(name, "must be a string or a list of strings")
    if len(stop) > MAX_STOP_WORDS:
        raise fields.fail(name, f"may hold at most {MAX_STOP_WORDS} strings")
    return tuple(word for word in stop if word)


def template_kwargs(
    fields: Fields, *, thinking: Optional[bool] = None, effort: Optional[str] = None
) -> dict:
    """Variables for the model's chat template: ``chat_template_kwargs`` as sent, over
    them ``thinking`` as ``enable_thinking`` and ``effort`` as ``reasoning_effort`` (where
    the client's API has its own words for these; ``none`` effort switches thinking off)."""
    raw = fields.raw("chat_template_kwargs")
    if raw is not None and not isinstance(raw, dict):
        raise fields.fail("chat_template_kwargs", "must be an object of template variables")
    variables = dict(raw or {})
    if "enable_thinking" in variables and not isinstance(variables["enable_thinking"], bool):
        raise fields.fail("chat_template_kwargs", "'enable_thinking' must be true or false")
    if effort == "none":
        thinking = False if thinking is None else thinking
    elif effort is not None:
        variables["reasoning_effort"] = effort
    if thinking is not None:
        variables["enable_thinking"] = thinking
    return variables


def effort(fields: Fields, name: str) -> Optional[str]:
    """A reasoning effort, as OpenAI names them."""
    value = fields.string(name)
    if value is not None and value not in EFFORTS:
        raise fields.fail(name, f"must be one of {', '.join(EFFORTS)}, got {value!r}")
    return value


def text_only(fields: Fields) -> None:
    """A body asks for no audio output: ``modalities`` other than ``["text"]`` and an
    ``audio`` that is not null are refused by name. The gateway writes its client's answer
    itself, in text, and carries no audio back: served, the audio would be billed and
    dropped. Both fields are left unread otherwise, to go on as they came."""
    modalities = fields.raw("modalities")
    if modalities is not None and (
        not isinstance(modalities, list) or any(kind != "text" for kind in modalities)
    ):
        raise fields.fail("modalities", f'must be ["text"]: {IN_TEXT}')
    if fields.raw("audio") is not None:
        raise fields.fail("audio", f"must be null: {IN_TEXT}")


def tool_call(fields: Fields, fallback_id: str) -> ToolCall:
    """An earlier call in OpenAI's chat shape (``{id, type, function: {name, arguments}}``);
    arguments given as an object are written as JSON text, as the API carries them."""
    function = _function(fields)
    arguments = function.raw("arguments")
    if arguments is None:
        arguments = "{}"
    elif isinstance(arguments, dict):
        arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    elif not isinstance(arguments, str):
        raise function.fail("arguments", "must be a string of JSON (or an object)")
    return ToolCall(fields.string("id") or fallback_id, function.required("name"), arguments)


def _function(fields: Fields) -> Fields:
    """The ``function`` of a tool or call in OpenAI's shape (its ``type`` function, or none)."""
    kind = fields.string("type")
    if kind not in (None, "function"):
        raise fields.fail("type", f"must be function, got {kind!r}")
    function = fields.object("function")
    if function is None:
        raise fields.fail("function", "is required")
    return function


def chosen_function(fields: Fields, tools: Sequence[dict], name: str = "name") -> ToolChoice:
    """A choice of the one function named by ``fields[name]``, which must be among the
    ``tools`` offered (each OpenAI's function shape)."""
    chosen = fields.required(name)
    offered = [tool["function"]["name"] for tool in tools]
    if chosen not in offered:
        raise fields.fail(
            name,
            f"names the function {chosen!r}, which is not among the tools "
            f"({', '.join(offered) or 'none given'})",
        )
    return ToolChoice("function", chosen)


def function_tools(fields: Fields, most: int, schema_size: int, name: str = "tools") -> tuple:
    """Tools in OpenAI's function shape (``{type: function, function: {name, description,
    parameters}}``, as OpenAI's and Ollama's APIs take them), each with a name: at most
    ``most``, each schema at most ``schema_size`` bytes of JSON."""
    tools = fields.raw(name)
    if tools is None:
        return ()
    for tool in offered_tools(fields, most, name):
        function = _function(tool)
        function.required("name")
        parameters = function.raw("parameters")
        if parameters is None:
            continue
        if not isinstance(parameters, dict):
            raise function.fail("parameters", "must be a JSON Schema object")
        sized_schema(function, "parameters", parameters, schema_size)
    return tuple(tools)


def offered_tools(fields: Fields, most: int, name: str = "tools") -> list:
    """A request's tools, each as :class:`Fields` (``[]`` when it offers none): at most
    ``most``, since the server compiles every tool offered into the grammar of its answer."""
    tools = fields.raw(name)
    if isinstance(tools, list) and len(tools) > most:
        raise fields.fail(name, f"may offer at most {most} tools, got {len(tools)}")
    return fields.objects(name)


def sized_schema(fields: Fields, name: str, schema: dict, most: int) -> dict:
    """``schema``, found to take at most ``most`` bytes of JSON: the server compiles each
    schema into a grammar, which takes many times that memory."""
    size = json_size(schema)
    if size > most:
        raise fields.fail(name, f"is a schema of {size} bytes of JSON; at most {most} are accepted")
    return schema


def json_size(value: Any) -> int:
    """The bytes of ``value`` as compact JSON."""
    try:
        return len(orjson.dumps(value))
    except TypeError:  # integers wider than 64 bits
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def response_format(
    kind: Optional[str], fields: Fields, schema_at: Fields, schema_size: int
) -> Optional[ResponseFormat]:
    """``text`` (none), ``json_object`` or ``json_schema`` (its schema in ``schema_at``, of
    at most ``schema_size`` bytes of JSON); ``fields`` holds the ``type``. A ``json_object``
    may carry a ``schema`` too, as llama-server reads it."""
    if kind == "text":
        return None
    if kind == "json_object" and schema_at.raw("schema") is None:
        return ResponseFormat("json_object")
    if kind in ("json_object", "json_schema"):
        schema = schema_at.raw("schema")
        if not isinstance(schema, dict):
            raise schema_at.fail("schema", "must be a JSON Schema object")
        check_schema(schema_at, "schema", schema, schema_size)
        return ResponseFormat("json_schema", schema)
    raise fields.fail("type", "must be text, json_object or json_schema")


def check_schema(fields: Fields, name: str, schema: dict, most: int) -> None:
    """A schema the ``jsonschema`` package itself rejects is the client's mistake; so is one
    of more than ``most`` bytes of JSON (found first: checking it takes time as it grows).
    One that names no draft is read by the newest, or else by draft 7, whose ``items`` may
    be a list, as llama.cpp's grammars read it."""
    sized_schema(fields, name, schema, most)
    try:
        validator = jsonschema.validators.validator_for(schema)
        try:
            validator.check_schema(schema)
        except jsonschema.SchemaError:
            if "$schema" in schema:
                raise
            jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise fields.fail(
            name, f"is not a valid JSON Schema: {exc.message} (at {where or 'the top'})"
        ) from None
    except (RecursionError, ValueError, TypeError, LookupError) as exc:
        raise fields.fail(name, f"is not a valid JSON Schema ({unreadable(exc)})") from None


def unreadable(exc: BaseException) -> str:
    """Why a schema could not be read as one, in words (never the class that says it)."""
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if isinstance(exc, LookupError):
        return "a $ref in it cannot be resolved"
    return "it cannot be read as one"
