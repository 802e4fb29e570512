"""What a body holds, told before it is read (how many arrays and objects) or without
recursion (how deep they nest)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.bodyshape import brackets, deeper, more_containers, too_deep


def nested(levels: int, leaf="x") -> object:
    """A value of ``levels`` arrays and objects, alternating, around ``leaf``."""
    value = leaf
    for level in range(levels):
        value = [value] if level % 2 else {"a": value}
    return value


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b'{"a": [1, {"b": []}]}', 4),
        (b'"[{"', 2),  # in strings too: an upper bound
        (b"null", 0),
        ('{"a": [1]}'.encode("utf-16"), 2),
    ],
)
def test_brackets(data, count):
    assert brackets(data) == count


@pytest.mark.parametrize(
    ("data", "held"),
    [
        (b"null", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}], "c": {}}', 5),
        (b'{"text": "[[[{{{"}', 1),  # brackets in strings are text
        (b'{"[": "{", "k": ["[", "]", "{"]}', 2),  # in keys too
        (b'["\\"[", "\\\\", ["\\\\\\"{"]]', 2),  # escaped quotes and backslashes
        (b'["\\\\", [], "\\\\\\\\", []]', 3),  # a string that ends in a backslash
        (b'["", "", [""], {"": ""}]', 3),  # empty strings, side by side
        (b'["a[", "b", "c[", []]', 2),  # strings with brackets between others
        (b'[{"a":"x{y"},{"b":"["}]', 3),
        (json.dumps({"code": "x = {'a': [1]}; " * 500, "list": [[]] * 7}).encode(), 9),
        (json.dumps([{"q": '"[{', "r": "\\["}] * 20).encode(), 21),
        ('{"a": [{}]}'.encode("utf-16"), 3),  # not UTF-8: every bracket counts
        ('{"a": "[{"}'.encode("utf-32"), 3),
    ],
)
def test_more_containers_counts_the_brackets_outside_strings(data, held):
    assert not more_containers(data, held)
    assert more_containers(data, held - 1) or not held


tricky_text = st.text(alphabet='[]{}"\\ ab,:é', max_size=8)
json_values = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=20,
)


def held(value) -> int:
    if isinstance(value, dict):
        return 1 + sum(held(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(held(item) for item in value)
    return 0


@given(value=json_values, ascii=st.booleans(), spaced=st.booleans())
def test_more_containers_agrees_with_the_parsed_body(value, ascii, spaced):
    data = json.dumps(
        value, ensure_ascii=ascii, separators=(", ", ": ") if spaced else (",", ":")
    ).encode()
    count = held(value)
    assert not more_containers(data, count)
    assert more_containers(data, count - 1) or not count


@pytest.mark.parametrize(
    "data",
    [
        b'"[' * 100_004,  # every other bracket is in a string: told by the quotes alone
        b"[" * 100_001 + b'"' + b'\\"' * 100_000,  # an escaped quote after another, to the end
        b"[" * 100_001 + b'"' * 100_000,
        b"[{" * 50_001,
    ],
)
def test_many_brackets_and_quotes_are_told_at_once(data):
    assert more_containers(data, 50_000)


@pytest.mark.parametrize(
    ("value", "most", "deeper_than_most"),
    [
        ("x", 0, False),
        (1, 0, False),
        (None, 0, False),
        ([], 0, True),
        ([], 1, False),
        ({}, 1, False),
        ([[]], 1, True),
        ([[]], 2, False),
        ([1, "a", [2, [3]]], 3, False),
        ([1, "a", [2, [3]]], 2, True),
        ({"a": {"b": {}}, "c": [1]}, 3, False),
        ({"a": {"b": {}}, "c": [1]}, 2, True),
        (nested(64), 64, False),
        (nested(65), 64, True),
        (nested(5000), 64, True),  # as deep as no recursion could go: walked all the same
        ([[], [[[]]], [[]]], 3, True),  # the deepest branch is not the first
    ],
)
def test_deeper(value, most, deeper_than_most):
    assert deeper(value, most) is deeper_than_most


@pytest.mark.parametrize(
    ("value", "most", "where"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, 64, None),
        ({"model": "m", "tools": [nested(70)]}, 64, "tools"),
        ({"a": nested(62), "b": nested(63), "c": nested(64)}, 64, "c"),  # the body is a level
        ({"a": nested(63), "b": nested(62)}, 64, None),
        ([nested(64)], 64, "body"),  # a body that is no object
        ([nested(63)], 64, None),
        ("just text", 1, None),
    ],
)
def test_too_deep_names_the_top_level_field(value, most, where):
    assert too_deep(value, most) == where
