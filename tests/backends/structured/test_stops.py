"""Stop words: text cut at the first, however a stream splits it; a stream of chunks cut
there, ended with a chunk that names the word."""

from __future__ import annotations

import itertools

import pytest

from proxy.backends.structured.stops import StopWords, stopping
from proxy.core.answers import Chunk, ToolCallPiece, Usage

TEXT = "Hello from tiny GLM!!"


@pytest.mark.parametrize(
    "stop, expected",
    [
        ([" tiny"], "Hello from"),
        (["m ti"], "Hello fro"),
        (["!!", "GLM"], "Hello from tiny "),
        (["Hello"], ""),
        (["nowhere"], TEXT),
        (["!!!"], TEXT),
        ([], TEXT),
    ],
    ids=["word", "across-pieces", "earliest-wins", "at-start", "absent", "partial-at-end", "none"],
)
def test_stop_words_cut_the_text_however_it_is_split(stop, expected):
    for cuts in itertools.combinations(range(1, len(TEXT)), 2):
        pieces = [TEXT[i:j] for i, j in itertools.pairwise((0, *cuts, len(TEXT)))]
        words = StopWords(stop)
        shown = ""
        for piece in pieces:
            shown += words.feed(piece)
            assert expected.startswith(shown), (pieces, shown)
        if not words.stopped:
            shown += words.flush()
        assert shown == expected, pieces
        assert words.stopped == (expected != TEXT)


def test_stop_words_withhold_only_a_possible_start():
    words = StopWords(["<|end|>"])
    assert words.feed("Hi <") == "Hi "
    assert words.feed("b") == "<b"
    assert words.feed(" <|en") == " "
    assert words.feed("d|> more") == ""
    assert words.stopped and words.feed("x") == ""


def stream(*chunks: Chunk):
    yield from chunks


def test_a_stream_stops_at_a_word_and_reads_no_further():
    read = []

    def chunks():
        for text in ["Hello", ", wor", "ld and", " more"]:
            read.append(text)
            yield Chunk(text=text, usage=Usage(9, len(read)))
        yield Chunk(finish_reason="length", usage=Usage(9, 5))

    out = list(stopping(chunks(), ["world"]))
    assert [c.text for c in out] == ["Hello", ", ", ""]
    assert (out[-1].finish_reason, out[-1].stop_sequence, out[-1].usage) == (
        "stop",
        "world",
        Usage(9, 3),
    )
    assert read == ["Hello", ", wor", "ld and"]  # the rest was never asked for


def test_a_stream_without_its_words_ends_as_it_ends():
    call = (ToolCallPiece(0, "{}", "c1", "f"),)
    out = list(
        stopping(
            stream(
                Chunk(text="ab"),
                Chunk(reasoning="hm"),
                Chunk(text="", tool_calls=call),
                Chunk(finish_reason="tool_calls", usage=Usage(1, 2)),
            ),
            ["xyz"],
        )
    )
    assert [(c.text, c.reasoning, c.tool_calls, c.finish_reason) for c in out] == [
        ("ab", "", (), None),
        ("", "hm", (), None),
        ("", "", call, None),
        ("", "", (), "tool_calls"),
    ]


def test_withheld_text_that_was_no_word_comes_with_the_end():
    out = list(stopping(stream(Chunk(text="a wo"), Chunk(finish_reason="stop")), ["world"]))
    assert "".join(c.text for c in out) == "a wo" and out[-1].stop_sequence is None
