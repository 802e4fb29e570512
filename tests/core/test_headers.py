"""Client text named in a response header goes out as visible ASCII."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from proxy.core.headers import MOST, named


@pytest.mark.parametrize(
    ("items", "value"),
    [
        (["num_ctx", "num_gpu"], "num_ctx, num_gpu"),
        (["web_search"], "web_search"),
        (["a\r\nX-Forged: yes"], "a%0D%0AX-Forged:%20yes"),
        (["nul\x00"], "nul%00"),
        (["名前"], "%E5%90%8D%E5%89%8D"),
        (["ü€"], "%C3%BC%E2%82%AC"),
        (["a,b", "c d", "100%"], "a%2Cb, c%20d, 100%25"),  # the separators and the escape
        (["tab\there", "del\x7f", "nel\x85"], "tab%09here, del%7F, nel%C2%85"),
        (["lone \ud800"], "lone%20%ED%A0%80"),
        (['{"json": [1]}'], '{"json":%20[1]}'),
        ([""], ""),
        (["", "a", ""], ", a, "),
    ],
)
def test_items_are_percent_encoded(items, value):
    assert named(items) == value


@pytest.mark.parametrize("item", ["line\r\nnext", "é", "\x00\x1b[31m", "a, b", "%41"])
def test_an_item_reads_back_as_it_was_written(item):
    assert unquote(named([item])) == item


def test_only_visible_ascii_and_the_separator_go_out():
    value = named(chr(code) for code in range(0x100))
    assert all(0x20 <= ord(char) < 0x7F for char in value)
    assert value.count(", ") == 0x100 - 1


def test_items_past_the_length_are_counted_not_named():
    value = named(f"tool_{i:04}" for i in range(1000))
    assert len(value) <= MOST + len(", (999 more)")
    assert value.startswith("tool_0000, tool_0001, ")
    kept = value.split(", ")[:-1]
    assert value.endswith(f", ({1000 - len(kept)} more)")


def test_one_item_past_the_length_is_counted():
    assert named(["x" * (MOST + 1)]) == "(1 more)"
