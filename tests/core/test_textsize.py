"""A text's tokens told from its bytes: the estimate lies between the floor and the bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core import textsize


@pytest.mark.parametrize(
    ("text", "size"), [("", 0), ("hi", 2), ("héllo", 6), ("中", 3), ("\ud800", 3)]
)
def test_a_texts_size_is_its_utf8_bytes_a_lone_surrogate_too(text, size):
    assert textsize.size(text) == size


@pytest.mark.parametrize(
    ("text", "payload", "about", "fewest"),
    [
        (0, 0, 0, 0),
        (1, 0, 1, 0),
        (4, 0, 1, 0),
        (5, 0, 2, 0),
        (0, 7, 2, 0),
        (0, 8, 3, 0),
        (320, 0, 80, 10),
    ],
)
def test_text_takes_about_four_bytes_a_token_json_three_and_a_half_and_never_32(
    text, payload, about, fewest
):
    assert textsize.about(text, payload) == about
    assert textsize.fewest(text + payload) == fewest


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_the_estimate_is_never_below_the_floor_nor_above_the_bytes(text, payload):
    assert textsize.fewest(text + payload) <= textsize.about(text, payload) <= text + payload
