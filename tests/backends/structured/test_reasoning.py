"""Thoughts told apart from the answer: the same, whole or split at every chunk boundary."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.backends.structured.reasoning import ReasoningSplitter, split

CASES = [
    pytest.param(
        "<think>\nLet me see.\n</think>\n\nHello!", False, ("Let me see.", "Hello!"), id="deepseek"
    ),
    pytest.param(
        "Let me see.\n</think>\n\nHello!",
        True,
        ("Let me see.", "Hello!"),
        id="opened-by-the-template",
    ),
    pytest.param("  <think>a\n\nb</think>c", False, ("a\n\nb", "c"), id="inner-space-kept"),
    pytest.param(
        "Hello <think>not thoughts</think>",
        False,
        ("", "Hello <think>not thoughts</think>"),
        id="only-a-block-that-opens",
    ),
    pytest.param(
        "<think>cut short by the lim", False, ("cut short by the lim", ""), id="cut-inside"
    ),
    pytest.param("<think></think>Hi", False, ("", "Hi"), id="empty-thoughts"),
    pytest.param("Hi", True, ("Hi", ""), id="opened-and-never-closed"),
    pytest.param("<thin", False, ("", "<thin"), id="a-tag-that-never-came"),
    pytest.param("\n\nHi", False, ("", "\n\nHi"), id="plain-answer-as-is"),
    pytest.param("<think>a</thinker>b</think>c", False, ("a</thinker>b", "c"), id="look-alike-tag"),
    pytest.param("", False, ("", ""), id="nothing"),
]


@pytest.mark.parametrize(("text", "opened", "expected"), CASES)
def test_whole(text, opened, expected):
    assert split(text, opened) == expected


def streamed(pieces, opened: bool) -> tuple:
    splitter = ReasoningSplitter(opened)
    reasoning = answer = ""
    for piece in pieces:
        more_reasoning, more_answer = splitter.feed(piece)
        reasoning, answer = reasoning + more_reasoning, answer + more_answer
    rest_reasoning, rest_answer = splitter.close()
    return reasoning + rest_reasoning, answer + rest_answer


@pytest.mark.parametrize(("text", "opened", "expected"), CASES)
def test_split_at_every_boundary(text, opened, expected):
    for cut in range(len(text) + 1):
        assert streamed([text[:cut], text[cut:]], opened) == expected, cut
    for second in range(len(text) + 1):
        for first in range(second + 1):
            pieces = [text[:first], text[first:second], text[second:]]
            assert streamed(pieces, opened) == expected, (first, second)
    assert streamed(list(text), opened) == expected


@given(
    st.lists(
        st.sampled_from(["<think>", "</think>", "<", "</", "think", ">", " ", "\n", "a", "b"]),
        max_size=12,
    ),
    st.booleans(),
    st.data(),
)
def test_any_text_any_pieces(tokens, opened, data):
    text = "".join(tokens)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=4)))
    pieces = [text[a:b] for a, b in pairwise([0, *cuts, len(text)])]
    assert streamed(pieces, opened) == split(text, opened)


def test_the_answer_passes_as_it_comes_once_the_thoughts_are_over():
    splitter = ReasoningSplitter()
    assert splitter.feed("<think>x</think>") == ("x", "")
    assert splitter.feed("Hel") == ("", "Hel")
    assert splitter.feed("lo </think>") == ("", "lo </think>")
