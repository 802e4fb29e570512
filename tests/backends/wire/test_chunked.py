"""Chunked transfer coding however the network splits it."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.backends.wire.chunked import BrokenChunks, Dechunker


def dechunked(reads: list) -> list:
    """The payload each read brings, fed to one :class:`Dechunker` until it ends."""
    dechunker, payloads = Dechunker(), []
    for read in reads:
        payload = dechunker.feed(read)
        if payload:
            payloads.append(payload)
        if dechunker.ended:
            return payloads
    dechunker.closed()
    return payloads


def encode(payloads: list) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads if p) + b"0\r\n\r\n"


def split(data: bytes, cuts: list) -> list:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in pairwise([0, *points, len(data)])]


@given(st.lists(st.binary(max_size=300), max_size=20), st.lists(st.integers(0, 7000), max_size=30))
def test_the_payload_comes_through_whatever_the_splits(payloads, cuts):
    raw = split(encode(payloads), cuts)
    assert b"".join(dechunked(raw)) == b"".join(payloads)


@given(
    st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=10), st.integers(1, 10_000)
)
def test_a_body_cut_short_is_broken(payloads, keep):
    data = encode(payloads)
    cut = data[: min(keep, len(data) - 3)]  # never the whole last-chunk marker
    with pytest.raises(BrokenChunks):
        list(dechunked(split(cut, [5, 11])))


def test_every_chunk_that_arrived_together_is_one_piece():
    raw = [encode([b"data: a\n\n", b"data: b\n\n"])[:-5], b"0\r\n\r\n"]
    assert list(dechunked(raw)) == [b"data: a\n\ndata: b\n\n"]


def test_extensions_are_ignored_and_trailers_not_read():
    raw = [b"3;name=value\r\nabc\r\n0\r\nTrailer: x\r\n\r\n", b"never read"]
    assert list(dechunked(raw)) == [b"abc"]


@pytest.mark.parametrize(
    "raw",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"-3\r\nabc\r\n0\r\n\r\n", b"2\r\nabc\r\n0\r\n\r\n", b"1" * 2000],
    ids=["not-hex", "negative", "longer-than-said", "no-line-end"],
)
def test_what_is_not_chunked_is_broken(raw):
    with pytest.raises(BrokenChunks):
        list(dechunked([raw]))
