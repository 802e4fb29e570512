"""Counting tokens the old servers do not count right, pieces of characters made whole, and
the bound an answer whose request sets none is told."""

from __future__ import annotations

import pytest

from proxy.backends.servercpp.budget import (
    check_fits,
    chunk_tokens,
    fewest_tokens,
    limited,
    unasked_bound,
    whole_characters,
)
from proxy.backends.servercpp.embedding import server_piece, whole_pieces
from proxy.core.answers import Chunk, TokenLogprob, Usage
from proxy.core.errors import ContextLengthError
from proxy.core.textsize import MOST_BYTES_PER_TOKEN
from proxy.core.types import GenerationRequest, Message

ZHONG = "中".encode()  # e4 b8 ad


@pytest.mark.parametrize(
    "text,pieces,tokens",
    [
        (" the cat", [" the", " cat"], [(b" the", True), (b" cat", True)]),
        ("中", ["byte: \\xad"], [(b"\xe4", False), (b"\xb8", False), (b"\xad", True)]),
        (
            "中文",
            ["byte: \\xad", "byte: \\x87"],
            [
                (b"\xe4", False),
                (b"\xb8", False),
                (b"\xad", True),
                (b"\xe6", False),
                (b"\x96", False),
                (b"\x87", True),
            ],
        ),
        ("a中", ["a"], [(b"a", True), (ZHONG, False)]),
        ("é", ["é"], [("é".encode(), True)]),
        ("", [], []),
    ],
    ids=["words", "a-character-in-bytes", "two-characters", "unlisted-rest", "wide-piece", "empty"],
)
def test_chunk_tokens(text, pieces, tokens):
    assert chunk_tokens(text, pieces) == tokens


@pytest.mark.parametrize(
    "data,text",
    [
        (ZHONG, "中"),
        (ZHONG[:1], ""),
        (ZHONG[:2], ""),
        (ZHONG + ZHONG[:1], "中"),
        (b"\xff a", "\ufffd a"),
    ],
    ids=["whole", "one-byte", "two-bytes", "whole-then-part", "invalid"],
)
def test_whole_characters(data, text):
    assert whole_characters(data) == text


def chunk(text: str, *pieces: str) -> Chunk:
    return Chunk(text=text, logprobs=tuple(TokenLogprob(p, -0.5) for p in pieces))


def final(predicted: int, reason: str = "length") -> Chunk:
    return Chunk(finish_reason=reason, usage=Usage(7, predicted))


@pytest.mark.parametrize(
    "chunks,limit,texts,end",
    [
        (
            [chunk(" a", " a"), chunk(" b", " b"), chunk(" c", " c"), final(3)],
            2,
            [" a", " b"],
            ("length", 2),
        ),
        ([chunk(" a", " a"), final(1, "stop")], 5, [" a"], ("stop", 1)),
        ([chunk("中", "byte: \\xad"), final(3)], 1, [""], ("length", 1)),
        ([chunk("中", "byte: \\xad"), final(3)], 3, ["中"], ("length", 3)),
        (
            [chunk("中", "byte: \\xad"), chunk("文", "byte: \\x87"), final(6)],
            4,
            ["中", ""],
            ("length", 4),
        ),
        ([chunk(" a", " a"), chunk(" b", " b"), final(2, "stop")], 2, [" a", " b"], ("stop", 2)),
    ],
    ids=[
        "cut",
        "stopped-before",
        "inside-a-character",
        "a-whole-character",
        "second-character-cut",
        "stopped-at-the-limit",
    ],
)
def test_limited(chunks, limit, texts, end):
    out = list(limited(chunks, limit, keep_logprobs=False))
    *body, last = out
    assert [c.text for c in body] == texts
    assert all(not c.logprobs for c in out)
    assert (last.finish_reason, last.usage.completion_tokens) == end
    assert last.usage.prompt_tokens == 7


def test_limited_keeps_the_logprobs_of_the_tokens_kept():
    out = list(limited([chunk(" a b", " a", " b"), final(2)], 1, keep_logprobs=True))
    assert [t.token for t in out[0].logprobs] == [" a"] and out[0].text == " a"


@pytest.mark.parametrize(
    "tokens,pieces",
    [
        ([(1, b" the"), (2, b" cat")], [(1, " the"), (2, " cat")]),
        (
            [(1, b"\xe4"), (2, b"\xb8"), (3, b"\xad"), (4, b"!")],
            [(1, "中"), (2, ""), (3, ""), (4, "!")],
        ),
        ([(1, b" \xe4"), (2, b"\xb8\xad")], [(1, " 中"), (2, "")]),
        ([(1, b"a"), (2, b"\xe4")], [(1, "a"), (2, "\ufffd")]),
    ],
    ids=["words", "a-character-in-bytes", "split-unevenly", "unfinished"],
)
def test_whole_pieces(tokens, pieces):
    assert whole_pieces(tokens) == pieces


@pytest.mark.parametrize(
    "piece,data", [(" hi", b" hi"), ([228], b"\xe4"), ([300], b""), (None, b"")]
)
def test_server_piece(piece, data):
    assert server_piece(piece) == data


PER = MOST_BYTES_PER_TOKEN


def chat(*texts: str) -> GenerationRequest:
    return GenerationRequest(messages=tuple(Message("user", text) for text in texts))


@pytest.mark.parametrize(
    ("request_", "fewest"),
    [
        (chat(""), 0),
        (chat("x" * (PER - 1)), 0),
        (chat("x" * PER), 1),
        (chat("x" * PER, "y" * PER), 2),
        (GenerationRequest(prompt="z" * 3 * PER), 3),
    ],
)
def test_fewest_tokens(request_, fewest):
    assert fewest_tokens(request_) == fewest


@pytest.mark.parametrize(
    ("characters", "context", "refused"),
    [
        (3 * 1024 * 1024, 4096, True),  # 3 MiB against 4,096 tokens
        (PER * 4096, 4096, False),  # may fit: the server counts it
        (PER * 4097, 4096, True),
        (10**6, None, False),  # a context not known: the server's to judge
    ],
)
def test_check_fits(characters, context, refused):
    request = chat("a" * characters)
    if not refused:
        check_fits(request, context)
        return
    with pytest.raises(ContextLengthError) as error:
        check_fits(request, context)
    assert error.value.limit == context and error.value.prompt_tokens > context
    assert f"at least {error.value.prompt_tokens} tokens" in error.value.message


@pytest.mark.parametrize(
    ("context", "prompt", "bound"),
    [
        (None, None, None),  # nothing known: nothing told
        (None, 21, None),
        (4096, None, 4096),  # a prompt not counted (a current server): the whole context
        (512, 21, 489),  # an old server: what the prompt leaves, less the two it takes
        (512, 507, 3),  # the fewest an old server honours
    ],
)
def test_an_answer_that_sets_no_length_is_told_what_the_context_leaves(context, prompt, bound):
    assert unasked_bound(context, prompt) == bound


@pytest.mark.parametrize("prompt", [508, 512, 600])
def test_a_prompt_that_leaves_an_old_server_too_little_room_is_refused(prompt):
    with pytest.raises(ContextLengthError) as error:
        unasked_bound(512, prompt)
    assert (error.value.prompt_tokens, error.value.limit) == (prompt, 512)
