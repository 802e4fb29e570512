"""ChatGLM3's tool-call text, both ways: read safely from the model, written for the history.

A ChatGLM3 tool call is the function's name on the first line, then a fenced block holding
``tool_call(key=value, ...)`` with Python literals; the turn ends on ``<|observation|>``.
GLM-4 writes a JSON object in place of the ``tool_call(...)`` line; both are read. Model
output is never run: the call is parsed with :mod:`ast` and only literal nodes are evaluated,
and whatever cannot be read that way comes back as a plain JSON string.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from typing import Any, Collection, Optional

from proxy.core.types import ToolCall

FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.S)
UNREADABLE = (SyntaxError, ValueError, TypeError, RecursionError, MemoryError)


def parse(text: str, names: Collection[str]) -> Optional[ToolCall]:
    """Read a tool call of one of ``names`` from a whole reply; ``None`` when it is none."""
    name, newline, rest = text.partition("\n")
    name = name.strip()
    if not newline or name not in names:
        return None
    fenced = FENCE.search(rest)
    body = (fenced.group(1) if fenced else rest).strip()
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", name, arguments_json(body))


def arguments_json(body: str) -> str:
    """Turn the model's arguments into JSON text: an object if they are literals, else a string."""
    for read in (_json_object, _keyword_literals):
        try:
            return json.dumps(read(body), ensure_ascii=False, allow_nan=False)
        except UNREADABLE:
            continue
    return json.dumps(body, ensure_ascii=False)


def render(call: ToolCall) -> str:
    """Write an earlier tool call the way ChatGLM3 writes one."""
    return f"{call.name}\n```python\n{_call_line(call.arguments)}\n```"


def _json_object(body: str) -> dict:
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("the arguments are not a JSON object")
    return value


def _keyword_literals(body: str) -> dict:
    """``tool_call(a=1, b='x')`` → ``{"a": 1, "b": "x"}``, evaluating literal nodes only."""
    call = ast.parse(body, mode="eval").body
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "tool_call"
        and not call.args
    ):
        raise ValueError("not a tool_call(key=value, ...) expression")
    values = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ValueError("**arguments are not literals")
        values[keyword.arg] = ast.literal_eval(keyword.value)
    return values


def _call_line(arguments: Any) -> str:
    try:
        values = json.loads(arguments) if isinstance(arguments, str) else arguments
    except (ValueError, RecursionError):
        values = None
    if isinstance(values, dict) and all(
        isinstance(key, str) and key.isidentifier() for key in values
    ):
        return "tool_call(" + ", ".join(f"{key}={value!r}" for key, value in values.items()) + ")"
    return "" if arguments is None else str(arguments)
