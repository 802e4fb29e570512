"""What one answer walks, counted from its calls (``bench.footprint``)."""

from __future__ import annotations

import pytest

from bench.footprint import OWN, Walk, per_token, walked

MINE = OWN + "core/sse.py"
FLASK = "/site-packages/flask/app.py"


@pytest.mark.parametrize(
    ("calls", "walk"),
    [
        pytest.param([], Walk(0, 0, 0, 0), id="nothing"),
        pytest.param([(MINE, 1, "a"), (MINE, 1, "a")], Walk(1, 1, 1, 2), id="one-function-twice"),
        pytest.param([(MINE, 1, "a"), (MINE, 9, "b")], Walk(2, 2, 1, 2), id="two-in-one-file"),
        pytest.param([(MINE, 1, "a"), (FLASK, 1, "a")], Walk(2, 1, 2, 2), id="one-of-its-own"),
        # a name twice in one file (two classes' methods) is two functions
        pytest.param([(FLASK, 3, "get"), (FLASK, 30, "get")], Walk(2, 0, 1, 2), id="same-name"),
    ],
)  # fmt: skip
def test_a_walk_counts_each_function_once_and_every_call(calls, walk):
    assert walked(calls) == walk


def test_the_calls_a_token_are_the_slope_between_two_streams():
    assert per_token(Walk(0, 0, 0, 700), Walk(0, 0, 0, 220), 48) == 10.0
