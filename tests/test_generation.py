"""Stream events from backend chunks: tokens read together leave together, nothing is lost."""
from __future__ import annotations

import pytest

from proxy.errors import UpstreamError
from proxy.generation import _in_writes
from proxy.types import Chunk


def text(chunk: Chunk) -> list:
    return [chunk.text] if chunk.text else []


def failing(chunks: list, error: Exception):
    yield from chunks
    raise error


def test_chunks_read_together_become_one_list_of_events():
    chunks = [Chunk("a", followed=True), Chunk("b", followed=True), Chunk("c"), Chunk("d"),
              Chunk("", finish_reason="stop")]
    assert list(_in_writes(iter(chunks), text)) == [["a", "b", "c"], ["d"]]


def test_a_chunk_without_events_sends_nothing_of_its_own():
    chunks = [Chunk("a", followed=True), Chunk("", followed=True), Chunk("b")]
    assert list(_in_writes(iter(chunks), text)) == [["a", "b"]]


def test_what_was_read_before_a_failure_still_goes_out():
    writes = _in_writes(failing([Chunk("a", followed=True), Chunk("b", followed=True)],
                                UpstreamError("cut")), text)
    assert next(writes) == ["a", "b"]
    with pytest.raises(UpstreamError):
        next(writes)
