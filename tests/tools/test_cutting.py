"""An MCP server's lines cut as they are read: what is kept is valid JSON whose strings
are the first characters of the server's own, at most the bounds' bytes of them, however
the lines arrive in pieces; a line that needs no cutting passes byte for byte."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.tools.cutting import SHORT, Cutter, TooLong
from proxy.tools.transport import CUT, marked


def read(data: bytes, budget: int, most: int = 1 << 30, piece: int = 0) -> list:
    """Every line of ``data`` as kept, with whether it was cut, fed ``piece`` bytes at a
    time (0: whole)."""
    cutter, lines, line = Cutter(budget, most), [], []
    size = piece or len(data) or 1
    for start in range(0, len(data), size):
        for kept, cut in cutter.pieces(data[start : start + size]):
            line.append(kept)
            if cut is not None:
                lines.append((b"".join(line), cut))
                line = []
    return lines


def strings(value) -> list:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *strings(item)]]
    return []


TEXTS = [
    "x" * 5000,
    "é" * 3000,  # two bytes each, written as \u00e9 or as UTF-8
    "😀" * 2000,  # a surrogate pair each when escaped
    'say "hi"\\ and\nthen\ttab ' * 300,
    "\u2028" + "ab\\" * 2000,
]


@pytest.mark.parametrize("text", TEXTS, ids=["ascii", "latin", "emoji", "escapes", "backslashes"])
@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "utf8"])
@pytest.mark.parametrize("piece", [0, 1, 2, 3, 5, 7, 64, 4096])
def test_a_long_string_keeps_its_first_characters_and_valid_json(text, ascii_only, piece):
    message = {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": text}]}}
    data = json.dumps(message, ensure_ascii=ascii_only).encode() + b"\n"
    ((line, cut),) = read(data, budget=2000, piece=piece)
    kept = json.loads(line)
    assert cut
    assert kept["id"] == 7 and kept["result"]["content"][0]["type"] == "text"
    text_kept = kept["result"]["content"][0]["text"]
    assert text.startswith(text_kept) and 0 < len(text_kept) < len(text)
    assert len(json.dumps(text_kept, ensure_ascii=ascii_only)) <= SHORT + 2000 + 2


@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3000),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    ),
    ascii_only=st.booleans(),
    budget=st.integers(0, 3000),
    piece=st.integers(1, 97),
)
def test_any_json_text_stays_json_with_its_strings_cut_to_prefixes(
    value, ascii_only, budget, piece
):
    data = json.dumps(value, ensure_ascii=ascii_only).encode() + b"\n"
    ((line, cut),) = read(data, budget, piece=piece)
    kept = json.loads(line)
    pairs = list(zip(strings(value), strings(kept), strict=True))
    assert len(pairs) == len(strings(value)) == len(strings(kept))
    assert all(whole.startswith(part) for whole, part in pairs)
    assert cut == (line != data[:-1])
    assert cut == any(whole != part for whole, part in pairs)


@pytest.mark.parametrize("piece", [0, 1, 3])
def test_lines_that_need_no_cutting_pass_as_they_came(piece):
    data = b'{"a":"b","c":[1,2.5,"\\u00e9\\"",null]}\n{"id":1}\n\n[]\n'
    assert read(data, budget=0, piece=piece) == [
        (b'{"a":"b","c":[1,2.5,"\\u00e9\\"",null]}', False),
        (b'{"id":1}', False),
        (b"", False),
        (b"[]", False),
    ]


def test_each_line_has_a_budget_of_its_own():
    long = '"' + "y" * 10_000 + '"'
    data = f"[{long},{long}]\n[{long}]\n".encode()
    (first, cut1), (second, cut2) = read(data, budget=3000)
    assert cut1 and cut2
    a, b = json.loads(first)
    assert (len(a), len(b)) == (SHORT + 3000, SHORT)  # the budget spent, the short part kept
    assert json.loads(second) == ["y" * (SHORT + 3000)]


@pytest.mark.parametrize("piece", [0, 2, 1000])
def test_a_line_past_its_most_is_refused(piece):
    flood = b"[" + b"1," * 100_000 + b"1]\n"
    with pytest.raises(TooLong):
        read(flood, budget=10, most=4096, piece=piece)


def test_a_cut_result_says_so_in_its_meta_and_other_lines_stay_as_they_are():
    result = json.loads(marked(b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}'))
    assert result["result"]["_meta"] == {CUT: True}
    sse = marked(b'data: {"jsonrpc":"2.0","id":2,"result":{"_meta":{"k":1}}}')
    assert sse.startswith(b"data: ") and json.loads(sse[6:])["result"]["_meta"] == {
        "k": 1,
        CUT: True,
    }
    for other in (b'{"jsonrpc":"2.0","method":"x"}', b"event: message", b'{"result":3}'):
        assert marked(other) == other
