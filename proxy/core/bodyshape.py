"""What a request body's JSON holds, told before it is read or without recursion: how many
arrays and objects, how deep they nest, and where it holds text no server must get.

Arrays and objects cost the proxy before any field is looked at. Read, one takes 60 bytes
and more for its two or three of JSON, so a body of little else takes twenty times its size
and more. And every step that walks a body recursively (encoding it for a server, checking a
schema, compiling a grammar) fails at Python's recursion limit, while JSON parsers take
bodies nested far deeper. Most bodies are told apart at C speed, by counting brackets.

A lone UTF-16 surrogate, which JSON's escapes let a body hold, is text no UTF-8 writer can
write: it is found by its field's path, walked without recursion too, before any server
gets it.

:func:`parsed_body` reads a body within these bounds, for the API's requests and a batch's
lines alike.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

import orjson

from proxy.core.errors import InvalidJsonError, InvalidRequestError

SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
OTHER_BYTES = bytes(byte for byte in range(256) if byte not in b'"[{')
SURROGATE = re.compile("[\ud800-\udfff]")


def brackets(data: bytes) -> int:
    """The opening brackets in JSON text: no fewer than its arrays and objects, nor than the
    levels they nest, in any encoding."""
    return data.count(b"[") + data.count(b"{")


def more_containers(data: bytes, most: int) -> bool:
    """Whether the JSON text ``data`` holds more than ``most`` arrays and objects: its
    opening brackets outside strings. Told in linear time and little memory, whatever the
    text, by bytes' own methods:

    escaped backslashes, then escaped quotes, are taken out (left to right, as JSON reads
    them), then all but quotes and opening brackets; two quotes side by side go too (a
    string without brackets, or the end of one and the start of the next: the brackets after
    them are as much in or out of strings as before). Every other stretch between the quotes
    left is outside strings, and holds a bracket: past ``2 * most + 2`` quotes the answer is
    known, and short of them the stretches are few enough to add up.

    In UTF-16 or UTF-32 (NUL bytes, which UTF-8 JSON never holds) a byte of another
    character may look like a quote: every bracket counts.
    """
    if b"\x00" in data:
        return brackets(data) > most
    marks = (
        data.replace(b"\\\\", b"")
        .replace(b'\\"', b"")
        .translate(None, OTHER_BYTES)
        .replace(b'""', b"")
    )
    if (marks.count(b'"') - 1) // 2 > most:
        return True
    return len(b"".join(marks.split(b'"')[::2])) > most


def too_deep(body: Any, most: int) -> Optional[str]:
    """The top-level field of ``body`` under which arrays and objects nest more than ``most``
    levels deep, counting the body itself; ``"body"`` when the body is no object; ``None``
    when none does."""
    if type(body) is not dict:
        return "body" if deeper(body, most) else None
    return next((name for name, value in body.items() if deeper(value, most - 1)), None)


def deeper(value: Any, most: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``most`` levels deep (a scalar
    nests none, ``[]`` one), walked one level at a time and no further than ``most``."""
    level = [value] if type(value) in (dict, list) else []
    for _ in range(most):
        if not level:
            return False
        below = []
        for container in level:
            for item in container.values() if type(container) is dict else container:
                if type(item) is dict or type(item) is list:
                    below.append(item)
        level = below
    return bool(level)


def lone_surrogate_at(value: Any) -> Optional[str]:
    """Where ``value`` holds a lone UTF-16 surrogate, as a field path; ``None`` if nowhere.

    JSON's ``\\ud800`` escapes, and UTF-8 that encodes a surrogate (CESU-8), decode to text
    no UTF-8 writer can write: no server must get it.
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


def parsed_body(data: bytes, most_containers: int, most_nesting: Optional[int]) -> object:
    """``data`` read as JSON, or a 400 naming why not: invalid JSON, invalid UTF-8, text
    holding a lone UTF-16 surrogate, more arrays and objects than ``most_containers`` (told
    before it is read: ``--max-containers``), or nested deeper than ``most_nesting``
    (``--max-nesting``; ``None``: its caller checks the part it reads)."""
    opened = brackets(data)  # most bodies need no more than this count
    if opened > most_containers and more_containers(data, most_containers):
        raise InvalidRequestError(
            f"The body holds more than {most_containers} arrays and objects, which this "
            f"server does not accept (--max-containers)"
        )
    try:
        body = orjson.loads(data or b"null")
        # surrogates can only come from \uD800-\uDFFF escapes: most bodies need no walk
        suspect = SURROGATE_ESCAPE.search(data)
    except orjson.JSONDecodeError:
        body, suspect = _parsed_unusual(data), True
    where = lone_surrogate_at(body) if suspect else None
    if where is not None:
        raise InvalidRequestError(
            f"'{where}' holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape, "
            f"or its UTF-8 bytes), which is not text",
            param=where,
        )
    if most_nesting is not None and opened > most_nesting:
        check_nesting(body, most_nesting)
    return body


def check_nesting(body: object, most: int, within: str = "") -> None:
    """Refuse ``body`` (a field ``within`` another, where it is one) nested more than
    ``most`` levels deep, naming its field."""
    deep = too_deep(body, most)
    if deep is None:
        return
    field = within if deep == "body" else f"{within}.{deep}" if within else deep
    where = f"'{field}'" if field else "The body"
    raise InvalidRequestError(
        f"{where} nests arrays and objects more than {most} levels deep, which this server "
        f"does not accept (--max-nesting)",
        param=field or "body",
    )


def _parsed_unusual(data: bytes) -> object:
    """What orjson refuses, read as the standard library reads it (NaN, integers wider than
    64 bits, UTF-16 and UTF-32, surrogates), else a 400 saying why. The standard library lets
    the UTF-8 bytes of a surrogate through as text: the caller looks for them."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidJsonError(f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequestError("The body is nested too deeply.") from None
