"""A tool call's arguments checked against the tool's input schema before the call: a
model's mistake is told by the field it got wrong, and never reaches the server. Pure.
"""

from __future__ import annotations

from typing import Any, Callable

import jsonschema
from jsonschema.exceptions import best_match
from referencing.exceptions import Unresolvable

from proxy.core.errors import ToolArgumentsError, ToolServerError
from proxy.core.fields import unreadable

Check = Callable[[Any], None]  # raises ToolArgumentsError naming the field, or returns


def checker(server: str, tool: str, schema: dict) -> Check:
    """The check of ``tool``'s arguments against ``schema`` (compiled once, as its server
    listed it): JSON Schema 2020-12 unless the schema names its draft. A schema the
    ``jsonschema`` package rejects is its server's mistake, told at each call."""
    try:
        kind = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        kind.check_schema(schema)
        validator = kind(schema)
    except (jsonschema.SchemaError, RecursionError, ValueError, TypeError, LookupError) as exc:
        problem = getattr(exc, "message", None) or unreadable(exc)

        def refuse(arguments: Any) -> None:
            raise ToolServerError(
                f"the tool {tool!r} of the MCP server {server!r} lists an input schema that "
                f"is not a valid JSON Schema ({problem}): it cannot be called"
            )

        return refuse

    def check(arguments: Any) -> None:
        if not isinstance(arguments, dict):
            raise ToolArgumentsError(
                f"the arguments of the tool {tool!r} must be an object, got "
                f"{type(arguments).__name__}",
                param="arguments",
            )
        try:
            error = best_match(validator.iter_errors(arguments))
        except Unresolvable:
            raise ToolServerError(
                f"the input schema of the tool {tool!r} of the MCP server {server!r} cannot "
                f"be checked (a $ref in it cannot be resolved)"
            ) from None
        except RecursionError as exc:
            raise ToolServerError(
                f"the input schema of the tool {tool!r} of the MCP server {server!r} cannot "
                f"be checked ({unreadable(exc)})"
            ) from None
        if error is not None:
            where, problem = _named(error)
            raise ToolArgumentsError(
                f"the arguments of the tool {tool!r} do not fit its input schema: {where} "
                f"{problem}",
                param=where,
            )

    return check


def _named(error: jsonschema.ValidationError) -> tuple:
    """The field ``error`` is about, and what is wrong with it: a missing property is
    named as the field it would be."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            return field_path([*path, missing[0]]), "is required"
    return field_path(path), _shortened(error.message)


def field_path(path) -> str:
    """``arguments.items[0].name``, as the proxy names fields."""
    return "arguments" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in path
    )


def _shortened(message: str, most: int = 300) -> str:
    """jsonschema's message quotes the value: a long one is shortened in its middle, so
    that what is wrong with it, said after it, stays."""
    if len(message) <= most:
        return message
    half = (most - 1) // 2
    return message[:half] + "…" + message[-half:]
