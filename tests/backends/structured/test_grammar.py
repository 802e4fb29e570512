"""JSON Schema to GBNF: the grammar admits exactly the JSON the schema allows.

Round trips both ways: instances of a schema (hypothesis strategies write them, and
json.dumps spells them compact, spaced or one per line) are admitted by its grammar, and
texts sampled from the grammar are valid JSON the schema accepts. Every grammar also passes
llama.cpp's own grammar engine (through llama-cpp-python, on the tiny model's vocabulary),
which also accepts and refuses the same texts as the tests' own reader.
"""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.backends.structured.grammar import schema_grammar
from proxy.backends.structured.patterns import UnsupportedSchemaError, repeat

from .gbnf import Grammar

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "days": {"type": "integer", "minimum": 0},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
NODE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
            },
            "required": ["value"],
            "additionalProperties": False,
        }
    },
    "$ref": "#/$defs/node",
}

SCHEMAS = {
    "object": WEATHER,
    "optional-only": {
        "type": "object",
        "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}, "c": {"const": 3}},
        "additionalProperties": False,
    },
    "array-bounds": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3},
    "nested": {
        "type": "object",
        "properties": {
            "point": {
                "type": "object",
                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                "required": ["x", "y"],
                "additionalProperties": False,
            },
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2},
        },
        "required": ["point"],
        "additionalProperties": False,
    },
    "recursive-ref": NODE,
    "definitions-ref": {
        "definitions": {"color": {"enum": ["red", "green"]}},
        "type": "array",
        "items": {"$ref": "#/definitions/color"},
        "maxItems": 3,
    },
    "any-of": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 3}]},
    "one-of": {"oneOf": [{"type": "boolean"}, {"type": "null"}]},
    "type-list": {"type": ["integer", "null"]},
    "pattern": {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"},
    "pattern-alternation": {"type": "string", "pattern": "^(cat|dog)s?$"},
    "date": {"type": "string", "format": "date"},
    "string-lengths": {"type": "string", "minLength": 2, "maxLength": 4},
    "free-object": {"type": "object", "additionalProperties": {"type": "integer"}},
    "any": {},
    "const-object": {"const": {"a": [1, "x"]}},
    "pydantic-style": {
        "title": "Trip",
        "type": "object",
        "properties": {
            "city": {"title": "City", "enum": ["Paris", "Rome"], "type": "string"},
            "nights": {"title": "Nights", "type": "integer", "minimum": 1, "maximum": 9},
        },
        "required": ["city", "nights"],
        "additionalProperties": False,
    },
}


def grammar(name: str) -> Grammar:
    return Grammar(schema_grammar(SCHEMAS[name]))


def test_llama_cpp_refuses_what_it_cannot_parse(llama):
    assert not llama.parses('root ::= "a" (')
    assert not llama.parses("root ::= x{1,2}")


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_llama_cpp_parses_every_grammar(llama, name):
    assert llama.parses(schema_grammar(SCHEMAS[name]))


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_texts_of_the_grammar_are_valid_instances(name):
    chooser = random.Random(name)
    parsed = grammar(name)
    for _ in range(60):
        text = parsed.sample(chooser)
        jsonschema.validate(json.loads(text), SCHEMAS[name])
        assert parsed.admits(text)


def instances(schema, root=None):
    """Instances of a schema of the supported subset (patterns and formats aside).

    As the grammar writes them: properties in the schema's order, numbers within what it
    bounds on purpose (15 integer digits, 6 decimals).
    """
    root = root or schema
    if schema is True or schema == {}:
        return st.recursive(
            st.none() | st.booleans() | st.integers(-999, 999) | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=6,
        )
    if "$ref" in schema:
        kind, name = schema["$ref"].split("/")[1:]
        return st.deferred(lambda: instances(root[kind][name], root))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            return st.one_of([instances(option, root) for option in schema[keyword]])
    kind = schema.get(
        "type", "object" if "properties" in schema or "additionalProperties" in schema else "array"
    )
    if isinstance(kind, list):
        return st.one_of([instances({**schema, "type": k}, root) for k in kind])
    if kind == "object":
        properties = schema.get("properties", {})
        if not properties:
            return st.dictionaries(
                st.text(max_size=4),
                instances(schema.get("additionalProperties", True), root),
                max_size=3,
            )
        required = schema.get("required", [])
        return st.fixed_dictionaries(
            {k: instances(v, root) for k, v in properties.items() if k in required},
            optional={k: instances(v, root) for k, v in properties.items() if k not in required},
        ).map(lambda found: {k: found[k] for k in properties if k in found})  # schema order
    if kind == "array":
        return st.lists(
            instances(schema.get("items", True), root),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 4),
        )
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 8))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**15) + 1), schema.get("maximum", 10**15 - 1))
    if kind == "number":
        return st.decimals(schema.get("minimum", -(10**14)), 10**14, places=3).map(float)
    return st.booleans() if kind == "boolean" else st.none()


BOUNDED = [name for name in SCHEMAS if name not in ("pattern", "pattern-alternation", "date")]


@pytest.mark.parametrize("name", BOUNDED)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_instances_of_the_schema_are_admitted(name, data):
    instance = data.draw(instances(SCHEMAS[name]))
    jsonschema.validate(instance, SCHEMAS[name])  # the strategy makes instances only
    parsed = grammar(name)
    # as models write it: UTF-8, not \\u escapes (a surrogate pair would count twice),
    # and line breaks without deep indentation (whitespace is bounded on purpose)
    for text in (
        json.dumps(instance, separators=(",", ":"), ensure_ascii=False),
        json.dumps(instance, ensure_ascii=False),
        json.dumps(instance, indent=0, ensure_ascii=False),
    ):
        assert parsed.admits(text), text


INVALID = [
    ("object", '{"city": "Oslo"}'),  # a required property missing
    ("object", '{"city": "Oslo", "days": 2, "wind": 3}'),  # an extra property
    ("object", '{"city": "Oslo", "days": -2}'),  # below the minimum of 0
    ("object", '{"city": "Oslo", "days": 2, "unit": "kelvin"}'),  # not in the enum
    ("object", '{"city": "far too long a name", "days": 2}'),  # past maxLength
    ("array-bounds", "[]"),
    ("array-bounds", "[1, 2, 3, 4]"),
    ("recursive-ref", '{"value": 1, "next": {"next": null}}'),
    ("pattern", '"AB-12"'),
    ("pattern", '"ab-123"'),
    ("type-list", '"x"'),
    ("one-of", "0"),
    ("any", "{'a': 1}"),
    ("any", "[1,]"),
    ("object", '{"city": "Oslo",  \n\n  \t "days": 2}'),  # more whitespace than bounded
]
VALID = [
    ("object", '{"city":"Oslo","days":2}'),
    ("object", '{ "city": "Oslo", "days": 2 }'),
    ("object", '{\n  "city": "Oslo",\n  "days": 2,\n  "unit": "celsius"\n}'),
    ("optional-only", "{}"),
    ("optional-only", '{"b": null}'),
    ("optional-only", '{"a": true, "c": 3}'),
    ("recursive-ref", '{"value": 1, "next": {"value": 2, "next": null}}'),
    ("pattern", '"AB-123"'),
    ("pattern-alternation", '"dogs"'),
    ("date", '"2026-11-22"'),
    ("any", '{"a": [1, {"b": null}], "c": "\\u00e9"}'),
]


@pytest.mark.parametrize(("name", "text"), INVALID)
def test_invalid_texts_are_refused(llama, name, text):
    assert not grammar(name).admits(text)
    assert not llama.accepts(schema_grammar(SCHEMAS[name]), text)  # and by llama.cpp alike


@pytest.mark.parametrize(("name", "text"), VALID)
def test_valid_texts_are_admitted(llama, name, text):
    assert grammar(name).admits(text)
    assert llama.accepts(schema_grammar(SCHEMAS[name]), text)


@pytest.mark.parametrize(
    ("schema", "keyword", "path"),
    [
        ({"type": "string", "pattern": "(?=x)"}, "pattern", "pattern"),
        (
            {"type": "object", "properties": {"a": {"not": {"type": "null"}}}},
            "not",
            "properties.a.not",
        ),
        ({"type": "array", "uniqueItems": True}, "uniqueItems", "uniqueItems"),
        ({"if": {}, "then": {}}, "if", "if"),
        ({"$ref": "#/$defs/missing"}, "$ref", ""),
        ({"allOf": [{"type": "string"}, {"maxLength": 2}]}, "allOf", ""),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 5000}, "maxItems", ""),
        ({"type": "string", "pattern": '^"$'}, "pattern", "pattern"),
    ],
)
def test_unsupported_keywords_name_themselves(schema, keyword, path):
    with pytest.raises(UnsupportedSchemaError) as error:
        schema_grammar(schema)
    assert (error.value.keyword, error.value.path) == (keyword, path)
    assert f"'{keyword}'" in str(error.value)


def test_a_grammar_reads_as_text():
    text = schema_grammar(
        {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    )
    assert text.startswith("root ::= ")
    assert '"\\"ok\\"" ws ":" ws boolean ws' in text
    assert 'boolean ::= "true" | "false"' in text
    assert "{" not in text.split("::=", 1)[1].replace('"{"', "").replace('"}"', "")


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, None, "(x)*"),
        (1, 1, "x"),
        (2, None, "x x (x)*"),
        (0, 2, "(x (x)?)?"),
        (1, 3, "x (x (x)?)?"),
    ],
)
def test_repetition_uses_only_what_old_servers_parse(low, high, expected):
    assert repeat("x", low, high) == expected
