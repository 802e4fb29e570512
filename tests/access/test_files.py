"""A file's lines read one at a time, each held once however long: a line past the bound
comes cut to one byte more than it (its reader sees it is too long), the rest read past."""

from __future__ import annotations

import io

import pytest

from proxy.access.files import CHUNK, read_line

LONG = b"y" * (3 * CHUNK + 5) + b"\n"


def read(data: bytes, longest: int) -> list:
    source, found = io.BytesIO(data), []
    while line := read_line(source, longest):
        found.append(bytes(line))
    return found


@pytest.mark.parametrize(
    ("data", "longest", "lines"),
    [
        (b"a\nbb\n\nc", 10, [b"a\n", b"bb\n", b"\n", b"c"]),
        (b"x" * 20 + b"\nok\n", 5, [b"x" * 6, b"ok\n"]),
        (LONG + b"z\n", 2 * CHUNK, [b"y" * (2 * CHUNK + 1), b"z\n"]),
        (LONG + b"z\n", 4 * CHUNK, [LONG, b"z\n"]),
        (b"w" * (2 * CHUNK), 4 * CHUNK, [b"w" * (2 * CHUNK)]),
    ],
    ids=["short", "cut", "cut-past-chunks", "long-within-bound", "last-without-break"],
)
def test_each_line_whole_or_cut_one_past_its_bound(data, longest, lines):
    assert read(data, longest) == lines
