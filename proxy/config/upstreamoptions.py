"""What a model on a server of a public API adds in the models file for its upstream: the
headers sent with every request (their values given, or read from the environment), its
timeouts, and the filters on the body sent. A header the proxy writes itself is refused by
name, and no message ever quotes a header's value.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from proxy.config.catalog import Filters, Timeouts
from proxy.config.files import no_unknown

# Headers the proxy writes itself, by the lower-case name: those that frame every request,
# and each API's key and version (a key has upstream_key_env, which no page shows).
FRAMING = ("host", "content-length", "content-type", "transfer-encoding", "connection")
OWN_HEADERS = {"openai": ("authorization",), "anthropic": ("x-api-key", "anthropic-version")}
# the characters of a header's name (RFC 9110's token)
TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
TIMEOUTS = ("connect", "read", "first_byte")
# Body fields no filter touches: what makes the request the one the client asked for.
UNFILTERED = ("model", "messages", "stream", "stream_options")
REQUIRED = {"anthropic": ("max_tokens",)}  # fields an API requires: set, never stripped


def upstream_headers(spec: dict, backend: str, key: str, fail) -> tuple:
    """``headers`` and ``headers_env`` as ``(name, value)`` and ``(name, variable)`` pairs:
    what goes with every request to the upstream. A header the proxy writes itself is
    refused by name; no message ever quotes a value."""
    own = (*FRAMING, *OWN_HEADERS.get(backend, ()))
    taken: set = set()
    found = []
    for table_name, problem in (
        ("headers", "must be a string without line breaks or other control characters"),
        ("headers_env", "must name an environment variable"),
    ):
        table = spec.get(table_name, {})
        if not isinstance(table, dict):
            raise fail(f"{key}.{table_name}", 'must be a table: { "Header-Name" = ... }')
        for name, value in table.items():
            where = f"{key}.{table_name}.{name}"
            if not name or not set(name) <= TOKEN:
                raise fail(where, "is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
            if name.lower() in own:
                raise fail(where, _own_header(name.lower()))
            if name.lower() in taken:
                raise fail(where, "is given twice (a header's name is the same in any case)")
            taken.add(name.lower())
            if table_name == "headers" and not header_value(value):
                raise fail(where, problem)
            if table_name == "headers_env" and not (
                isinstance(value, str) and value.isidentifier()
            ):
                raise fail(where, problem)
        found.append(tuple(table.items()))
    return tuple(found)


def _own_header(name: str) -> str:
    """Why the proxy keeps the header ``name`` (lower case) to itself."""
    if name in ("authorization", "x-api-key"):
        return (
            "carries the upstream's key, which the proxy writes itself: name the variable "
            "that holds it in upstream_key_env"
        )
    if name == "anthropic-version":
        return "is written by the proxy itself: the version of the Messages API it speaks"
    return "is written by the proxy itself: it frames every request"


def header_value(value: Any) -> bool:
    """Whether ``value`` can be a header's value: a string with no control character but
    tabs (a line break would end the header and begin another)."""
    return isinstance(value, str) and not any(
        unicodedata.category(character) == "Cc" and character != "\t" for character in value
    )


def upstream_timeouts(table: Any, key: str, fail) -> Timeouts:
    """``{connect = 5, read = 120, first_byte = 30}``: seconds, each positive."""
    if table is None:
        return Timeouts()
    if not isinstance(table, dict):
        raise fail(key, "must be a table: { connect = <s>, read = <s>, first_byte = <s> }")
    no_unknown(table, set(TIMEOUTS), key + ".", fail)
    for name, value in table.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < math.inf
        ):
            raise fail(f"{key}.{name}", f"must be a positive number of seconds, got {value!r}")
    return Timeouts(**{name: float(value) for name, value in table.items()})


def body_filters(table: Any, backend: str, defaults: dict, key: str, fail) -> Filters:
    """``{strip = ["top_k"], set = {temperature = 0.2}}``: fields of the upstream's API left
    out of the body sent, and put in it with the operator's values."""
    if table is None:
        return Filters()
    key += ".filters"
    if not isinstance(table, dict):
        raise fail(key, "must be a table: { strip = [<field>, ...], set = { <field> = <value> } }")
    no_unknown(table, {"strip", "set"}, key + ".", fail)
    strip = table.get("strip", [])
    if not isinstance(strip, list) or not all(isinstance(name, str) and name for name in strip):
        raise fail(f"{key}.strip", "must be a list of field names")
    if len(set(strip)) < len(strip):
        raise fail(f"{key}.strip", "names a field twice")
    put = table.get("set", {})
    if not isinstance(put, dict):
        raise fail(f"{key}.set", "must be a table of fields and the values they are sent with")
    for name in (*strip, *put):
        where = f"{key}.set.{name}" if name in put else f"{key}.strip"
        if name in UNFILTERED:
            raise fail(where, f"{name!r} is the proxy's to write: {', '.join(UNFILTERED)} are")
        if name in defaults:
            raise fail(where, f"{name!r} has a default too (defaults.{name}): give it in one")
    for name in strip:
        if name in put:
            raise fail(f"{key}.set.{name}", f"{name!r} is stripped too: give it in one of them")
        if name in REQUIRED.get(backend, ()):
            raise fail(
                f"{key}.strip", f"{name!r} cannot be left out: the API requires it (set it instead)"
            )
    for name, value in put.items():
        if not _json(value):
            raise fail(f"{key}.set.{name}", "must be a JSON value (no dates, no inf or nan)")
    return Filters(tuple(strip), tuple(put.items()))


def _json(value: Any) -> bool:
    """Whether ``value`` (as TOML read it) is what JSON can write."""
    if isinstance(value, dict):
        return all(_json(item) for item in value.values())
    if isinstance(value, list):
        return all(_json(item) for item in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))
