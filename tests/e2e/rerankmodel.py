"""A tiny reranker GGUF: documents score by the keywords they hold.

Real rerankers cannot be downloaded on the test machines, yet the proxy must pass
``/v1/rerank`` through to llama-server (``--reranking``) and back in the right order. This
model scores a document by which of :data:`KEYWORDS` it holds, so a test knows the order
(:data:`EXPECTED_ORDER`) and the scores (:func:`expected_score`) before it asks.

How it works. A causal llama model with no classifier head: llama.cpp's rank pooling then
takes element 0 of the last token's output (after the output norm) as the score. The
server lays out the pair as BOS, query, EOS, document, EOS. Every token but a keyword has
one embedding direction; each keyword, a user-defined special token (always a whole token,
even in text that is not parsed for specials), has its own. One attention head looks for
keywords anywhere (as in :mod:`.scriptedmodel`) and writes the mean of their weights into
dimension 0 of the last position; there the norm turns weight ``w`` into about
``w * sqrt(WIDTH) / sqrt(1 + w * w)``, and a pair without keywords scores 0. Keywords in the
query count for every document alike: a test's query should hold none. A keyword is found
inside longer words too ("rust" in "trust").
"""

from __future__ import annotations

import math
import pathlib

import gguf
import numpy as np

from .scriptedmodel import HEAD, ROPE_BASE, Tokens, _Vocabulary
from .tinymodel import RMS_EPS, Shape, write_llama_gguf

KEYWORDS = {"gold": 3.0, "silver": 2.0, "bronze": 1.0, "rust": -1.0}
TOKENS = Tokens(user_defined=tuple(KEYWORDS), bos="<s>", eos="</s>", add_bos=True)
WIDTH = 16
CONTEXT = 4096
SCORE, OTHER = 0, 1  # dimensions: the score, and every token but a keyword


def expected_score(keyword: str | None) -> float:
    """The score of a document holding ``keyword`` alone (``None``: none of them)."""
    if keyword is None:
        return 0.0
    weight = KEYWORDS[keyword]
    return weight / math.sqrt((1.0 + weight * weight) / WIDTH + RMS_EPS)


# Best first; ``None`` stands for a document without keywords.
EXPECTED_ORDER = tuple(sorted([*KEYWORDS, None], key=expected_score, reverse=True))

# A query that holds no keyword, and a document for each keyword and for none
QUERY = "which medal is best?"
DOCUMENTS = {
    "gold": "a gold medal",
    "silver": "a silver medal",
    "bronze": "a bronze medal",
    None: "a plain medal",
    "rust": "a rust stain",
}
# asked in an order unlike the answer's, so that the answer's order is the scores'
ASKED = [DOCUMENTS[k] for k in ("bronze", None, "gold", "rust", "silver")]
BEST_FIRST = [DOCUMENTS[keyword] for keyword in EXPECTED_ORDER]


def write_reranker(path: pathlib.Path, name: str = "tiny-reranker") -> pathlib.Path:
    """Write the reranker to ``path``; return the path. It ends query and document with EOS
    (``add_eos``: else the server ends neither), and declares rank pooling, as real rerankers
    do."""
    vocabulary = _Vocabulary(TOKENS)
    shape = Shape(width=WIDTH, layers=1, heads=1, heads_kv=1, ff=WIDTH)
    return write_llama_gguf(
        path,
        name,
        vocabulary.table(),
        _weights(vocabulary),
        CONTEXT,
        None,
        shape,
        bos_id=vocabulary.bos,
        eos_id=vocabulary.eos,
        add_eos=True,
        head_width=HEAD,
        rope_freq_base=ROPE_BASE,
        merges=vocabulary.merges,
        pooling=gguf.PoolingType.RANK,
    )


def _weights(vocabulary: _Vocabulary) -> dict:
    """Embeddings and the keyword-seeking head; the feed-forward part is zero."""
    embeddings = np.zeros((len(vocabulary.texts), WIDTH), np.float32)
    embeddings[:, OTHER] = 1.0
    query = np.zeros((HEAD, WIDTH), np.float32)
    key = np.zeros((HEAD, WIDTH), np.float32)
    value = np.zeros((HEAD, WIDTH), np.float32)
    out = np.zeros((WIDTH, HEAD), np.float32)
    root = np.sqrt(np.float32(WIDTH))  # the attention's input norm scales a one-hot by it
    looked_at = HEAD - 2  # the head's last rotary pair: the slowest to turn
    query[looked_at, :] = 1.0
    out[SCORE, 0] = 1.0
    for direction, (keyword, weight) in enumerate(KEYWORDS.items(), start=OTHER + 1):
        token = vocabulary.ids[keyword]
        embeddings[token] = 0.0
        embeddings[token, direction] = 1.0
        # score = q.k / sqrt(HEAD): a keyword's is 40, every other token's 0
        key[looked_at, direction] = 40.0 * np.sqrt(HEAD) / root**2
        value[0, direction] = weight / root
    ones = np.ones(WIDTH, np.float32)
    return {
        "token_embd.weight": embeddings,
        "output_norm.weight": ones,
        "blk.0.attn_norm.weight": ones,
        "blk.0.attn_q.weight": query,
        "blk.0.attn_k.weight": key,
        "blk.0.attn_v.weight": value,
        "blk.0.attn_output.weight": out,
        "blk.0.ffn_norm.weight": ones,
        "blk.0.ffn_gate.weight": np.zeros((WIDTH, WIDTH), np.float32),
        "blk.0.ffn_up.weight": np.zeros((WIDTH, WIDTH), np.float32),
        "blk.0.ffn_down.weight": np.zeros((WIDTH, WIDTH), np.float32),
    }
