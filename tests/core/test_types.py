"""A frozen value amended: a copy with the changes, the original as it was, as
``dataclasses.replace`` would make it."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.core.answers import Chunk, Completion, Usage
from proxy.core.types import GenerationRequest, Message, amended

REQUEST = GenerationRequest(model="m", messages=(Message("user", "hi"),), max_tokens=8)
COMPLETION = Completion("text", "stop", Usage(3, 4), extras={"timings": {}})


@pytest.mark.parametrize(
    ("value", "changes"),
    [
        (REQUEST, {"slot": 2}),
        (REQUEST, {"max_tokens": None, "stop": ("x",)}),
        (COMPLETION, {"usage": Usage(1, 1, reasoning_tokens=0)}),
        (Chunk("a", followed=True), {"text": "b", "followed": False}),
        (Chunk.partial("a", (), True), {"reasoning": "r"}),  # a field its class holds
        (Usage(1, 2), {}),
    ],
)
def test_an_amended_value_equals_what_replace_makes(value, changes):
    before = dict(vars(value))
    copy = amended(value, **changes)
    assert copy == dataclasses.replace(value, **changes)
    assert type(copy) is type(value) and copy is not value
    assert vars(value) == before  # the original as it was


def test_the_fields_not_changed_are_the_originals_own():
    copy = amended(COMPLETION, text="other")
    assert copy.extras is COMPLETION.extras and copy.usage is COMPLETION.usage


def test_a_copy_stays_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        amended(REQUEST, slot=1).slot = 2


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"slots": 1}, "slots"), ({"slot": 1, "tempreature": 0.5}, "tempreature")],
)
def test_a_field_the_value_lacks_is_refused_by_name(changes, named):
    with pytest.raises(TypeError, match=f"GenerationRequest has no field {named}$"):
        amended(REQUEST, **changes)
