"""What a request constrains the model's output to, as server.cpp fields: pure.

- ``response_format``: ``json_schema`` as the server's own ``json_schema`` where it has one
  (current llama.cpp), else compiled to a GBNF ``grammar``; ``json_object`` as any object.
- tools the model must call (``tool_choice`` ``required``, or one call of a named function):
  a grammar admitting only calls, in the model's format, to the allowed tools with arguments
  valid against their parameters, so even a weak model writes a valid call.
- tools it may call (``auto``): on servers with lazy grammars, the same grammar, applied only
  once the model writes the format's call opener; elsewhere, or when a tool's schema uses what
  the compiler cannot express (agents send large schemas), nothing: what the model writes is
  read as calls all the same.
"""

from __future__ import annotations

import json

from proxy.backends.structured.grammar import GrammarBuilder, schema_grammar
from proxy.backends.structured.patterns import UnsupportedSchemaError, literal, repeat
from proxy.backends.structured.toolformats import ToolFormat
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest

MAX_PARALLEL_CALLS = 4  # calls one constrained answer may hold: a weak model stops
WORD_TRIGGER = 1  # llama.cpp's grammar trigger type for a word


def output_fields(
    request: GenerationRequest, tool_format: ToolFormat, *, json_schema: bool, lazy_grammar: bool
) -> dict:
    """The ``/completion`` fields that constrain this request's output (maybe none).

    :param json_schema: the server compiles ``json_schema`` itself.
    :param lazy_grammar: the server applies a grammar from a trigger word on.
    """
    forced = bool(request.tools) and request.tool_choice.forced
    if forced and (request.response_format or request.grammar):
        raise InvalidRequestError(
            "a required tool call cannot be combined with response_format or grammar",
            param="tool_choice",
        )
    if request.response_format is not None:
        return _response_format(request, json_schema)
    if request.grammar is not None:
        return {"grammar": request.grammar}
    if not request.tools:
        return {}
    if forced:
        return {"grammar": tool_grammar(tool_format, request)}
    if lazy_grammar and tool_format.opener:
        try:
            grammar = tool_grammar(tool_format, request)
        except InvalidRequestError:  # a schema past the compiler: the model calls freely
            return {}
        return {
            "grammar": grammar,
            "grammar_lazy": True,
            "grammar_triggers": [{"type": WORD_TRIGGER, "value": tool_format.opener}],
            "preserved_tokens": [tool_format.opener],
        }
    return {}


def _response_format(request: GenerationRequest, json_schema: bool) -> dict:
    schema = request.response_format.schema or {"type": "object"}
    if json_schema:
        return {"json_schema": schema}
    try:
        return {"grammar": schema_grammar(schema)}
    except UnsupportedSchemaError as exc:
        raise InvalidRequestError(
            f"response_format.json_schema.schema: {exc}", param="response_format.json_schema.schema"
        ) from None


def tool_grammar(tool_format: ToolFormat, request: GenerationRequest) -> str:
    """A grammar admitting only calls to the tools ``request.tool_choice`` allows."""
    allowed = [
        tool
        for tool in request.tools
        if request.tool_choice.mode != "function"
        or tool["function"]["name"] == request.tool_choice.name
    ]
    builder = GrammarBuilder()
    ws = builder.primitive("ws")
    calls = []
    for index, tool in enumerate(allowed):
        function = tool["function"]
        parameters = function.get("parameters") or {"type": "object"}
        builder.use_root(parameters)
        try:
            arguments = builder.add(parameters, f"{function['name']}-arguments")
        except UnsupportedSchemaError as exc:
            raise InvalidRequestError(
                f"tools[{index}].function.parameters: {exc}",
                param=f"tools[{index}].function.parameters",
            ) from None
        calls.append(
            _call(
                tool_format,
                function["name"],
                arguments,
                ws,
                builder.primitive("string") if tool_format.call_ids else "",
            )
        )
    call = builder.rule("call", " | ".join(calls))
    several = request.parallel_tool_calls is not False and request.tool_choice.mode != "function"
    return builder.render(_calls(tool_format, call, ws, several))


def _call(tool_format: ToolFormat, name: str, arguments: str, ws: str, string: str) -> str:
    """One call; ``string``: the rule of a JSON string, when the format's models write the
    call's id after its arguments (Mistral's), else empty."""
    if tool_format.name == "chatglm3":
        return f'{literal(name)} "\\n```python\\n" {arguments} "\\n```"'
    key = literal(json.dumps(tool_format.arguments_key))
    call_id = f'("," {ws} "\\"id\\"" {ws} ":" {ws} {string} {ws})?' if string else ""
    body = (
        f'"{{" {ws} "\\"name\\"" {ws} ":" {ws} {literal(json.dumps(name))} {ws} "," {ws} '
        f'{key} {ws} ":" {ws} {arguments} {ws} {call_id} "}}"'
    )
    if tool_format.opener and not tool_format.listed:
        return f"{literal(tool_format.opener)} {ws} {body} {ws} {literal(tool_format.closer)}"
    return body


def _calls(tool_format: ToolFormat, call: str, ws: str, parallel: bool) -> str:
    most = MAX_PARALLEL_CALLS - 1 if parallel and tool_format.name != "chatglm3" else 0
    if tool_format.listed:
        more = repeat(f'"," {ws} {call} {ws}', 0, most) if most else ""
        return f'{literal(tool_format.opener)} "[" {ws} {call} {ws} {more} "]"'
    if not most:
        return call
    separator = f'{ws} (";" {ws})?' if not tool_format.opener else ws
    return f"{call} {repeat(f'{separator} {call}', 0, most)}"
