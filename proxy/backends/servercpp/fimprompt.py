"""A fill-in-the-middle prompt laid out as llama.cpp's ``/infill`` lays it out, for servers
that have no such route (PowerInfer's, llama.cpp's of 2023).

The model's own FIM tokens come from its GGUF: the ``fim_*`` ids the file names, else the
tokens whose text llama.cpp knows a family's by. The layout is llama.cpp's (the repo-level
pattern, arXiv 2409.12186)::

    [REP]myproject⏎ [SEP]file⏎ chunk … [SEP]filename⏎ [BOS][PRE]prefix cursor [SUF]suffix [MID]

with the repository and file lines only where the model has those tokens, and a plain-text
separator between other files' chunks where it has none. Each text piece is tokenized on
its own, as llama.cpp tokenizes it, and the gap's sides are cut to fit a batch as llama.cpp
cuts them (:func:`fitted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Union

from proxy.core.types import SourceChunk

# the GGUF fields that name a FIM token: today's, then the older CodeLlama-era names
KEYS = {
    "pre": ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"),
    "suf": ("tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"),
    "mid": ("tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"),
    "rep": ("tokenizer.ggml.fim_rep_token_id",),
    "sep": ("tokenizer.ggml.fim_sep_token_id",),
}
# the texts llama.cpp finds a family's FIM tokens by when the file names none
TEXTS = {
    "pre": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
            "<|code_prefix|>"),
    "suf": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
            "<|code_suffix|>"),
    "mid": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
            "<|code_middle|>"),
    "rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "sep": ("<|file_sep|>",),
}  # fmt: skip
REPOSITORY = "myproject\n"  # llama.cpp's names for the repository and the file being edited
FILENAME = "filename\n"
SNIPPET = "\n\n--- snippet ---\n\n"  # between other files' chunks, without a file token

Part = Union[int, str]  # a token id, or text the server tokenizes on its own
Side = Union[str, Sequence[int]]  # a side of the gap: its text, or its token ids
OLD_BATCH = 512  # the batch the old servers evaluate a prompt in, unless started otherwise


@dataclass(frozen=True)
class FimTokens:
    """A model's fill-in-the-middle tokens (ids), the text of each, and its BOS where its
    tokenizer puts one before a prompt."""

    pre: int
    suf: int
    mid: int
    rep: Optional[int] = None
    sep: Optional[int] = None
    bos: Optional[int] = None
    texts: Mapping = None  # id → the token's text, for a prompt sent as text
    spaced: bool = False  # SentencePiece: each text piece begins a word ("▁")


def fim_tokens(fields: Mapping) -> Optional[FimTokens]:
    """The FIM tokens of the GGUF whose metadata is ``fields``; ``None`` when it has none
    (its model cannot fill a gap)."""
    vocabulary = fields.get("tokenizer.ggml.tokens") or []
    found = {role: _token(fields, vocabulary, role) for role in KEYS}
    if None in (found["pre"], found["suf"], found["mid"]):
        return None
    model = fields.get("tokenizer.ggml.model")
    adds_bos = fields.get("tokenizer.ggml.add_bos_token", model == "llama")
    bos = fields.get("tokenizer.ggml.bos_token_id") if adds_bos else None
    ids = [token for token in (*found.values(), bos) if token is not None]
    return FimTokens(
        **found,
        bos=bos if isinstance(bos, int) else None,
        texts={token: vocabulary[token] for token in ids if token < len(vocabulary)},
        spaced=model == "llama",
    )


def _token(fields: Mapping, vocabulary: Sequence, role: str) -> Optional[int]:
    for key in KEYS[role]:
        token = fields.get(key)
        if isinstance(token, int) and 0 <= token < len(vocabulary):
            return token
    known = TEXTS[role]
    return next((token for token, text in enumerate(vocabulary) if text in known), None)


def fitted(prefix: list, suffix: list, cursor: int, batch: int = OLD_BATCH) -> tuple:
    """What llama.cpp keeps of a gap's sides (token ids) to fit a ``batch``: the prefix's
    last three quarters of it, the suffix's first quarter less two tokens and the ``cursor``
    line's."""
    kept = min(len(prefix), 3 * (batch // 4))
    return prefix[len(prefix) - kept :], suffix[: max(0, batch // 4 - (2 + cursor))]


def last_fitting(text: str, limit: int, count: Callable[[str], int]) -> str:
    """The longest end of ``text`` whose tokens (``count``) are ``limit`` at most: the cut
    llama.cpp makes in token ids, made in a text for a server that takes only text."""
    low, high = 0, len(text)  # text[high:] fits; the answer's start lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if count(text[middle:]) <= limit:
            high = middle
        else:
            low = middle + 1
    return text[high:]


def first_fitting(text: str, limit: int, count: Callable[[str], int]) -> str:
    """The longest start of ``text`` whose tokens (``count``) are ``limit`` at most."""
    low, high = 0, len(text)  # text[:low] fits; the answer's end lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if count(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def layout(
    tokens: FimTokens,
    prefix: Side,
    suffix: Side,
    nearby: Sequence[SourceChunk] = (),
    cursor: Side = "",
) -> list:
    """The prompt's parts in llama.cpp's order; ``cursor`` is the text typed on the line
    before the gap (``/infill``'s ``prompt``), which goes after the prefix. A side is a text
    or its token ids."""
    parts: list = []
    if tokens.rep is not None:
        parts += [tokens.rep, REPOSITORY]
    for chunk in nearby:
        if tokens.sep is not None:
            parts += [tokens.sep, chunk.filename + "\n"]
        else:
            parts.append(SNIPPET)
        parts.append(chunk.text)
    if tokens.sep is not None:
        parts += [tokens.sep, FILENAME]
    if tokens.bos is not None:
        parts.append(tokens.bos)
    parts += [tokens.pre, *_parts(prefix), *_parts(cursor), tokens.suf, *_parts(suffix)]
    return [part for part in parts if part != ""] + [tokens.mid]


def _parts(side: Side) -> list:
    return [side] if isinstance(side, str) else list(side)


def as_text(tokens: FimTokens, parts: Sequence[Part]) -> str:
    """``parts`` as one text for a server that reads special tokens out of a prompt and puts
    BOS first itself (llama.cpp of 2023): each token by its text, and each text piece begun
    as a word where the tokenizer begins a piece so (a piece after a special token is not
    begun so there)."""
    space = " " if tokens.spaced else ""
    return "".join(
        tokens.texts[part] if isinstance(part, int) else space + part
        for part in parts
        if part != tokens.bos
    )
