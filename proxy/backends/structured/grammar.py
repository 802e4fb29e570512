"""JSON Schema to GBNF: grammars that admit only JSON texts valid against a schema.

Every server.cpp kind takes a GBNF ``grammar``; PowerInfer's and llama.cpp's servers of
2023 take nothing else for structured output, and their grammar parser knows only ``?``,
``*`` and ``+``, so bounded repetition is spelt out with nested optionals here. Everything a
model may write is bounded where the schema bounds it, and whitespace always is: a weak model
under a grammar that allows endless spaces may write them endlessly.

Supported: ``type`` (one or a list), ``enum``, ``const``, ``anyOf``/``oneOf``, a single
``allOf``, ``$ref`` to ``#/$defs/…`` or ``#/definitions/…`` (recursion included),
objects (``properties``, ``required``, ``additionalProperties``; properties come in the
schema's order, optional ones may be left out; extra keys only on objects that list no
properties), arrays (``items``, ``minItems``, ``maxItems``), strings
(``minLength``, ``maxLength``, ``pattern`` in a regular-expression subset, ``format`` date,
time, date-time and uuid), numbers and integers (``minimum`` ≥ 0 drops the sign; an integer
range of at most 100 values is enforced; other bounds are not), booleans and null.
Annotations are ignored; any other keyword is an :class:`UnsupportedSchemaError` naming it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from proxy.backends.structured.patterns import (
    MAX_REPEAT,
    UnsupportedSchemaError,
    literal,
    regex_to_gbnf,
    repeat,
)

ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
    "strict",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "maximum",
    "format",
    "contentMediaType",
    "contentEncoding",
}
HANDLED = {
    "type",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
}
MAX_DIGITS = 15  # of an integer part: enough for any id, and a weak model stops
SMALL_RANGE = 100  # integer bounds this close are spelt out as the values between


def _digits(low: int, high: int) -> str:
    return " ".join(
        ["[0-9]"] * low
        + ([f"({' ('.join(['[0-9]'] * (high - low))}{')?' * (high - low)}"] if high > low else [])
    )


PRIMITIVES = {
    "ws": "([ \\t\\n] ([ \\t\\n] ([ \\t\\n] [ \\t\\n]?)?)?)?",
    "char": '[^"\\\\\\x00-\\x1f] | "\\\\" (["\\\\/bfnrt] | "u" hex hex hex hex)',
    "hex": "[0-9a-fA-F]",
    "string": '"\\"" char* "\\""',
    "natural": f'"0" | [1-9] {_digits(0, MAX_DIGITS - 1)}',
    "integer": '"-"? natural',
    "fraction": f'("." {_digits(1, 6)})? ([eE] [-+]? {_digits(1, 2)})?',  # no 1e999 (inf)
    "number": "integer fraction",
    "unsigned": "natural fraction",
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws (string ws ":" ws value ws ("," ws string ws ":" ws value ws)*)? "}"',
    "array": '"[" ws (value ws ("," ws value ws)*)? "]"',
}
FORMATS = {
    "date": r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
    "time": r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?",
    "date-time": r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3])"
    r":[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})",
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
}


class GrammarBuilder:
    """Rules collected while compiling schemas; :meth:`render` makes the grammar text."""

    def __init__(self, root_schema: Optional[dict] = None) -> None:
        self.rules: dict = {}
        self.root_schema = root_schema or {}
        self._refs: dict = {}

    def add(self, schema: Any, hint: str = "value", path: str = "") -> str:
        """The name of a rule admitting exactly the JSON values valid against ``schema``."""
        expression = self._expression(schema, path)
        if expression in self.rules or expression in self._refs.values():
            return expression  # already a rule of its own: a primitive, or a definition
        return self.rule(hint, expression)

    def rule(self, hint: str, expression: str) -> str:
        """A rule named after ``hint`` (made unique) for ``expression``."""
        base = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-") or "rule"
        name, count = base, 1
        while name in self.rules or name in PRIMITIVES or name == "root":
            count += 1
            name = f"{base}-{count}"
        self.rules[name] = expression
        return name

    def use_root(self, schema: Any) -> None:
        """Resolve ``$ref`` in what follows against ``schema`` (one tool's parameters)."""
        self.root_schema = schema if isinstance(schema, dict) else {}
        self._refs = {}

    def render(self, root: str) -> str:
        lines = [f"root ::= {root}"] + [f"{name} ::= {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n"

    def primitive(self, name: str) -> str:
        """Add a built-in rule and those it uses."""
        if name not in self.rules:
            self.rules[name] = PRIMITIVES[name]
            for used in re.findall(r"\b[a-z]+\b", PRIMITIVES[name]):
                if used in PRIMITIVES and used != name:
                    self.primitive(used)
        return name

    def _ref(self, ref: str, path: str) -> str:
        if ref not in self._refs:
            match = re.fullmatch(r"#/(\$defs|definitions)/([^/]+)", ref)
            target = self.root_schema.get(match.group(1), {}).get(match.group(2)) if match else None
            if target is None:
                raise UnsupportedSchemaError(
                    "$ref", path, f"{ref!r} does not name a definition of this schema"
                )
            name = self.rule(match.group(2), "")
            self._refs[ref] = name  # before compiling: a definition may refer to itself
            self.rules[name] = self._expression(target, f"{match.group(1)}.{match.group(2)}")
        return self._refs[ref]

    # -- one schema to one expression --------------------------------------------------------

    def _expression(self, schema: Any, path: str) -> str:
        if schema is True or schema == {}:
            return self.primitive("value")
        if schema is False:
            raise UnsupportedSchemaError("false", path, "admits no value")
        if not isinstance(schema, dict):
            raise UnsupportedSchemaError(str(schema)[:20], path, "is not a schema")
        unknown = sorted(set(schema) - HANDLED - ANNOTATIONS)
        if unknown:
            raise UnsupportedSchemaError(unknown[0], _at(path, unknown[0]))
        if "$ref" in schema:
            return self._ref(schema["$ref"], path)
        if "const" in schema:
            return self._exactly(schema["const"])
        if "enum" in schema:
            return " | ".join(self._exactly(value) for value in schema["enum"])
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                rest = {k: v for k, v in schema.items() if k != keyword}
                return " | ".join(
                    self.add(
                        {**rest, **option} if isinstance(option, dict) else option,
                        f"{_hint(path)}-option",
                        _at(path, f"{keyword}[{i}]"),
                    )
                    for i, option in enumerate(schema[keyword])
                )
        if "allOf" in schema:
            if len(schema["allOf"]) != 1:
                raise UnsupportedSchemaError(
                    "allOf", path, "with more than one schema is not supported"
                )
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            return self._expression({**rest, **schema["allOf"][0]}, _at(path, "allOf[0]"))
        kinds = schema.get("type") or _implied_type(schema)
        if kinds == "any":
            return self.primitive("value")
        if isinstance(kinds, list):
            return " | ".join(self.add({**schema, "type": kind}, kind, path) for kind in kinds)
        return self._typed(kinds, schema, path)

    def _exactly(self, value: Any) -> str:
        """One JSON value, spelt with any bounded whitespace between its tokens."""
        if not isinstance(value, (dict, list)) or not value:
            return literal(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        ws = self.primitive("ws")
        if isinstance(value, list):
            items = f' "," {ws} '.join(f"{self._exactly(item)} {ws}" for item in value)
            return f'("[" {ws} {items} "]")'
        pairs = f' "," {ws} '.join(
            f'{literal(json.dumps(key, ensure_ascii=False))} {ws} ":" {ws} '
            f"{self._exactly(item)} {ws}"
            for key, item in value.items()
        )
        return f'("{{" {ws} {pairs} "}}")'

    def _typed(self, kind: str, schema: dict, path: str) -> str:
        if kind == "object":
            return self._object(schema, path)
        if kind == "array":
            return self._array(schema, path)
        if kind == "string":
            return self._string(schema, path)
        unsigned = schema.get("minimum", -1) >= 0
        if kind == "integer":
            low, high = schema.get("minimum"), schema.get("maximum")
            if isinstance(low, int) and isinstance(high, int) and 0 <= high - low <= SMALL_RANGE:
                return " | ".join(literal(str(value)) for value in range(low, high + 1))
            return self.primitive("natural" if unsigned else "integer")
        if kind == "number":
            return self.primitive("unsigned" if unsigned else "number")
        if kind in ("boolean", "null"):
            return self.primitive(kind)
        raise UnsupportedSchemaError("type", _at(path, "type"), f"{kind!r} is not a JSON type")

    def _object(self, schema: dict, path: str) -> str:
        properties = schema.get("properties") or {}
        ws = self.primitive("ws")
        if not properties:
            extra = schema.get("additionalProperties", True)
            if extra is True or extra == {}:
                return self.primitive("object")
            if extra is False:
                return f'"{{" {ws} "}}"'
            value = self.add(extra, f"{_hint(path)}-value", _at(path, "additionalProperties"))
            pair = f'{self.primitive("string")} {ws} ":" {ws} {value} {ws}'
            return f'"{{" {ws} ({pair} ("," {ws} {pair})*)? "}}"'
        required = [name for name in properties if name in schema.get("required", ())]
        optional = [name for name in properties if name not in required]
        pairs = {name: self._pair(name, properties[name], path) for name in properties}
        parts = []
        for index, name in enumerate(required):
            parts.append(pairs[name] if index == 0 else f'"," {ws} {pairs[name]}')
        if required:
            parts += [f'("," {ws} {pairs[name]})?' for name in optional]
        elif optional:
            parts.append(f"({self._any_of_in_order([pairs[n] for n in optional], path)})?")
        return f'"{{" {ws} {" ".join(parts)} "}}"'

    def _pair(self, name: str, schema: Any, path: str) -> str:
        ws = self.primitive("ws")
        value = self.add(schema, f"{_hint(path)}-{name}", _at(path, f"properties.{name}"))
        return f'{literal(json.dumps(name, ensure_ascii=False))} {ws} ":" {ws} {value} {ws}'

    def _any_of_in_order(self, pairs: list, path: str) -> str:
        """A rule for any non-empty run of ``pairs`` kept in order, comma-separated."""
        ws = self.primitive("ws")
        tail = self.rule(f"{_hint(path)}-rest", pairs[-1])
        for pair in reversed(pairs[:-1]):
            tail = self.rule(f"{_hint(path)}-rest", f'{pair} ("," {ws} {tail})? | {tail}')
        return tail

    def _array(self, schema: dict, path: str) -> str:
        ws = self.primitive("ws")
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if high == 0:
            return f'"[" {ws} "]"'
        item = self.add(schema.get("items", True), f"{_hint(path)}-item", _at(path, "items"))
        one = f"{item} {ws}"
        items = self._bounded(one, f'"," {ws} {one}', low, high, path)
        return f'"[" {ws} {items} "]"'

    def _bounded(self, first: str, next_: str, low: int, high: Optional[int], path: str) -> str:
        """``first`` then ``next_`` repeated: ``low`` to ``high`` elements in all."""
        try:
            if low == 0:
                run = first + " " + repeat(next_, 0, None if high is None else high - 1)
                return f"({run})?"
            return first + " " + repeat(next_, low - 1, None if high is None else high - 1)
        except ValueError:
            raise UnsupportedSchemaError("maxItems", path, f"above {MAX_REPEAT}") from None

    def _string(self, schema: dict, path: str) -> str:
        if "pattern" in schema:
            body = regex_to_gbnf(schema["pattern"], _at(path, "pattern"))
            return f'"\\"" {body} "\\""'
        if schema.get("format") in FORMATS:
            return f'"\\"" {regex_to_gbnf(FORMATS[schema["format"]], path)} "\\""'
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if not low and high is None:
            return self.primitive("string")
        self.primitive("string")  # its rules spell a character
        char = self.primitive("char")
        try:
            return f'"\\"" {repeat(char, low, high)} "\\""'
        except ValueError:
            raise UnsupportedSchemaError("maxLength", path, f"above {MAX_REPEAT}") from None


def schema_grammar(schema: Any) -> str:
    """The GBNF grammar of the JSON texts valid against ``schema``."""
    builder = GrammarBuilder(schema if isinstance(schema, dict) else None)
    return builder.render(builder.add(schema, "value"))


def _implied_type(schema: dict) -> str:
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if {"pattern", "minLength", "maxLength"} & set(schema):
        return "string"
    return "any"


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _hint(path: str) -> str:
    last = re.sub(r"\[\d+\]", "", path.rsplit(".", 1)[-1]) if path else "value"
    return last if last not in ("properties", "items") else "value"
