"""The fill-in-the-middle prompt the proxy lays out for servers without ``/infill``: the
model's FIM tokens read from its GGUF metadata, and llama.cpp's layout, table by table."""

from __future__ import annotations

import pytest

from proxy.backends.servercpp.fimprompt import (
    FimTokens,
    as_text,
    fim_tokens,
    first_fitting,
    fitted,
    last_fitting,
    layout,
)
from proxy.core.types import SourceChunk

QWEN = ["<|endoftext|>", "a", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
        "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]  # fmt: skip
CODELLAMA = ["<unk>", "<s>", "</s>", "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"]
DEEPSEEK = ["<｜begin▁of▁sentence｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"]
CODESTRAL = ["<unk>", "<s>", "</s>", "[SUFFIX]", "[PREFIX]", "[MIDDLE]"]


def fields(vocabulary, model="gpt2", **more):
    return {"tokenizer.ggml.tokens": vocabulary, "tokenizer.ggml.model": model, **more}


@pytest.mark.parametrize(
    "metadata, expected",
    [
        pytest.param(
            fields(QWEN, **{"tokenizer.ggml.add_bos_token": False}),
            FimTokens(2, 4, 3, rep=6, sep=7, texts={2: QWEN[2], 4: QWEN[4], 3: QWEN[3],
                                                     6: QWEN[6], 7: QWEN[7]}),
            id="qwen-coder: found by text, with the repository and file tokens",
        ),
        pytest.param(
            fields(CODELLAMA, "llama", **{"tokenizer.ggml.bos_token_id": 1}),
            FimTokens(3, 4, 5, bos=1, texts={3: "▁<PRE>", 4: "▁<SUF>", 5: "▁<MID>", 1: "<s>"},
                      spaced=True),
            id="codellama: SentencePiece adds BOS unless told otherwise",
        ),
        pytest.param(
            fields(DEEPSEEK, **{"tokenizer.ggml.add_bos_token": True,
                                "tokenizer.ggml.bos_token_id": 0}),
            FimTokens(2, 1, 3, bos=0, texts={2: DEEPSEEK[2], 1: DEEPSEEK[1], 3: DEEPSEEK[3],
                                             0: DEEPSEEK[0]}),
            id="deepseek-coder: its own spelling, and a BOS it asks for",
        ),
        pytest.param(
            fields(CODESTRAL, "llama", **{
                "tokenizer.ggml.add_bos_token": False,
                "tokenizer.ggml.fim_pre_token_id": 4,
                "tokenizer.ggml.fim_suf_token_id": 3,
                "tokenizer.ggml.fim_mid_token_id": 5,
            }),
            FimTokens(4, 3, 5, texts={4: "[PREFIX]", 3: "[SUFFIX]", 5: "[MIDDLE]"}, spaced=True),
            id="codestral: named by the file, found by no text",
        ),
        pytest.param(
            fields(CODELLAMA[:3] + ["x"] * 4, "llama", **{
                "tokenizer.ggml.prefix_token_id": 3,
                "tokenizer.ggml.suffix_token_id": 4,
                "tokenizer.ggml.middle_token_id": 5,
                "tokenizer.ggml.add_bos_token": False,
            }),
            FimTokens(3, 4, 5, texts={3: "x", 4: "x", 5: "x"}, spaced=True),
            id="the older field names",
        ),
        pytest.param(fields(["<s>", "a", "b"]), None, id="no FIM tokens"),
        pytest.param(fields(QWEN[:3]), None, id="a prefix token alone fills no gap"),
        pytest.param(
            fields(QWEN, **{"tokenizer.ggml.fim_pre_token_id": 99}),
            FimTokens(2, 4, 3, rep=6, sep=7, texts={2: QWEN[2], 4: QWEN[4], 3: QWEN[3],
                                                     6: QWEN[6], 7: QWEN[7]}),
            id="an id outside the vocabulary is not taken",
        ),
    ],
)  # fmt: skip
def test_a_models_fim_tokens_come_from_its_gguf(metadata, expected):
    assert fim_tokens(metadata) == expected


PLAIN = FimTokens(10, 11, 12, texts={10: "<PRE>", 11: "<SUF>", 12: "<MID>"})
REPO = FimTokens(10, 11, 12, rep=13, sep=14)
WITH_BOS = FimTokens(10, 11, 12, bos=1, texts={10: "▁<PRE>", 11: "▁<SUF>", 12: "▁<MID>", 1: "<s>"},
                     spaced=True)  # fmt: skip
EXTRA = (SourceChunk("x = 1\n", "a.py"), SourceChunk("y = 2\n"))


@pytest.mark.parametrize(
    "tokens, extra, cursor, expected",
    [
        (PLAIN, (), "", [10, "def f():", 11, "\nf()", 12]),
        (PLAIN, (), "    ret", [10, "def f():", "    ret", 11, "\nf()", 12]),
        (WITH_BOS, (), "", [1, 10, "def f():", 11, "\nf()", 12]),
        (REPO, (), "", [13, "myproject\n", 14, "filename\n", 10, "def f():", 11, "\nf()", 12]),
        (REPO, EXTRA, "", [13, "myproject\n", 14, "a.py\n", "x = 1\n", 14, "tmp\n", "y = 2\n",
                           14, "filename\n", 10, "def f():", 11, "\nf()", 12]),
        (PLAIN, EXTRA, "", ["\n\n--- snippet ---\n\n", "x = 1\n", "\n\n--- snippet ---\n\n",
                            "y = 2\n", 10, "def f():", 11, "\nf()", 12]),
    ],
    ids=["plain", "the cursor's line after the prefix", "BOS before the prefix",
         "the repository and the file", "other files with file tokens",
         "other files without file tokens"],
)  # fmt: skip
def test_the_layout_is_llama_cpps(tokens, extra, cursor, expected):
    assert layout(tokens, "def f():", "\nf()", extra, cursor) == expected


def test_an_empty_side_is_left_out():
    assert layout(PLAIN, "", "") == [10, 11, 12]


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (PLAIN, "<PRE>def f():<SUF>\nf()<MID>"),
        # the server puts BOS first itself; each piece after a special token begins a word,
        # as a SentencePiece tokenizer begins every piece it is given
        (WITH_BOS, "▁<PRE> def f():▁<SUF> \nf()▁<MID>"),
    ],
    ids=["byte-level", "sentencepiece"],
)
def test_as_text_a_prompt_is_the_tokens_texts_and_the_pieces(tokens, expected):
    assert as_text(tokens, layout(tokens, "def f():", "\nf()")) == expected


def test_a_side_given_as_token_ids_goes_in_as_they_are():
    assert layout(PLAIN, [5, 6], [7], cursor=[8]) == [10, 5, 6, 8, 11, 7, 12]


@pytest.mark.parametrize(
    "prefix, suffix, cursor, batch, kept",
    [
        (list(range(10)), list(range(10)), 0, 512, (list(range(10)), list(range(10)))),
        (list(range(500)), list(range(200)), 0, 512, (list(range(116, 500)), list(range(126)))),
        (list(range(500)), list(range(200)), 20, 512, (list(range(116, 500)), list(range(106)))),
        (list(range(50)), list(range(50)), 200, 512, (list(range(50)), [])),
        (list(range(5000)), [], 0, 2048, (list(range(3464, 5000)), [])),
    ],
    ids=["short", "long", "a cursor line takes from the suffix", "no room left", "a batch of 2048"],
)
def test_the_sides_are_cut_to_a_batch_as_llama_cpp_cuts_them(prefix, suffix, cursor, batch, kept):
    assert fitted(prefix, suffix, cursor, batch) == kept


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize(
    "text, limit, last, first",
    [
        ("a b c d e", 2, " d e", "a b "),
        ("a b c d e", 0, "", ""),
        ("a b c d e", 9, "a b c d e", "a b c d e"),
        ("", 3, "", ""),
    ],
)
def test_a_text_is_cut_where_its_tokens_fit(text, limit, last, first):
    assert last_fitting(text, limit, words) == last
    assert first_fitting(text, limit, words) == first
