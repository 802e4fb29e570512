"""Tiny chatglm.cpp model files (GLM-4, ChatGLM3, ChatGLM2) that say a scripted reply.

Real ChatGLM models are gigabytes, so the tests write their own in the GGML format chatglm.cpp
0.4.2 loads. The network is wired as a lookup table: attention and MLP weights are zero, so
the hidden state is the last token's embedding. Each scripted token owns one embedding
dimension, and the output layer maps that dimension to the token that follows it in the
script; every other token maps to the script's first token. Greedy or sampled, the model
says its script after any prompt, then ends on ``end``.
"""

from __future__ import annotations

import base64
import io
import struct
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO, Optional, Sequence

import numpy as np

HIDDEN = 64
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 32
MAX_LENGTH = 8192
LOGIT = 10.0  # after RMSNorm the one-hot is sqrt(HIDDEN) = 8: the scripted logit is 80
ALIGNMENT = 16

GLM4_SPECIALS = (
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
)
CHATGLM3_SPECIALS = (
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "sop",
    "eop",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
)


def write_glm4(
    path: Path,
    script: Sequence[bytes],
    *,
    end: Optional[str] = "<|user|>",
    max_length: int = MAX_LENGTH,
) -> Path:
    """Write a GLM-4 file whose reply is ``script`` (token byte strings), then ``end``.

    A one-byte piece is that byte's own token; longer pieces become whole tokens. With
    ``end=None`` the script repeats forever, for tests of length limits.
    """
    pieces = [bytes([b]) for b in range(256)]
    pieces += [piece for piece in dict.fromkeys(script) if len(piece) > 1]
    rank = {piece: i for i, piece in enumerate(pieces)}
    vocab = "".join(f"{base64.b64encode(piece).decode()} {i}\n" for i, piece in enumerate(pieces))
    special = {name: len(pieces) + i for i, name in enumerate(GLM4_SPECIALS)}
    ids = [rank[piece] for piece in script]
    eos = special["<|endoftext|>"]
    with open(path, "wb") as out:
        _write(
            out,
            4,
            vocab.encode(),
            len(pieces) + len(GLM4_SPECIALS),
            eos,
            eos,
            max_length,
            ids,
            special[end] if end else ids[0],
        )
    return path


def write_chatglm3(path: Path, script: Sequence[str], *, end: str = "<|observation|>") -> Path:
    """Write a ChatGLM3 file whose reply is ``script`` (pieces of its tokenizer), then ``end``."""
    return _write_sentencepiece(path, 3, script, end)


def write_chatglm2(path: Path, script: Sequence[str]) -> Path:
    """Write a ChatGLM2 file (no roles but user and assistant, no tools) that says ``script``."""
    return _write_sentencepiece(path, 2, script, None)


def _write_sentencepiece(
    path: Path, model_type: int, script: Sequence[str], end: Optional[str]
) -> Path:
    """ChatGLM2 and ChatGLM3 share a SentencePiece tokenizer; ``end=None`` is its ``</s>``."""
    import sentencepiece as spm

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(
            [
                "hello world",
                "what is the weather in Paris?",
                "call a tool with some arguments",
                *script,
            ]
        ),
        model_writer=proto,
        model_type="bpe",
        vocab_size=400,
        byte_fallback=True,
        character_coverage=1.0,
        hard_vocab_limit=False,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        user_defined_symbols=list(script),
        minloglevel=2,
    )
    tokenizer = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    size = tokenizer.get_piece_size()
    specials = CHATGLM3_SPECIALS if model_type == 3 else CHATGLM3_SPECIALS[:5]
    special = {name: size + i for i, name in enumerate(specials)}
    ids = [tokenizer.piece_to_id(piece) for piece in script]
    with open(path, "wb") as out:
        _write(
            out,
            model_type,
            proto.getvalue(),
            size + len(specials),
            tokenizer.eos_id(),
            0,
            MAX_LENGTH,
            ids,
            special[end] if end else tokenizer.eos_id(),
        )
    return path


def _write(
    out: BinaryIO,
    model_type: int,
    tokenizer: bytes,
    vocab_size: int,
    eos: int,
    pad: int,
    max_length: int,
    script: Sequence[int],
    end: int,
) -> None:
    """Write the version-2 header, the tokenizer and the lookup-table weights."""
    assert len(script) < HIDDEN and len(set(script)) == len(script)
    out.write(b"ggml" + struct.pack("<ii", model_type, 2))
    out.write(
        struct.pack(
            "<iiiiiiififiii",
            0,
            vocab_size,
            HIDDEN,
            HEADS,
            KV_HEADS,
            1,
            INTERMEDIATE,
            1e-5,
            0,
            10000.0,
            max_length,
            eos,
            pad,
        )
    )
    out.write(struct.pack("<i", len(tokenizer)) + tokenizer)

    embedding = np.zeros((vocab_size, HIDDEN), np.float32)
    embedding[:, 0] = 1.0
    output = np.zeros((vocab_size, HIDDEN), np.float32)
    output[script[0], 0] = LOGIT
    for dim, (token, successor) in enumerate(pairwise([*script, end]), start=1):
        embedding[token] = np.eye(HIDDEN, dtype=np.float32)[dim]
        output[successor, dim] = LOGIT
    head = HIDDEN // HEADS
    layer = "transformer.encoder.layers.0."
    tensors = {
        "transformer.embedding.word_embeddings.weight": embedding,
        layer + "input_layernorm.weight": np.ones(HIDDEN, np.float32),
        layer + "self_attention.query_key_value.weight": np.zeros(
            (HIDDEN + 2 * KV_HEADS * head, HIDDEN), np.float32
        ),
        layer + "self_attention.query_key_value.bias": np.zeros(
            HIDDEN + 2 * KV_HEADS * head, np.float32
        ),
        layer + "self_attention.dense.weight": np.zeros((HIDDEN, HIDDEN), np.float32),
        layer + "post_attention_layernorm.weight": np.ones(HIDDEN, np.float32),
        layer + "mlp.dense_h_to_4h.weight": np.zeros((2 * INTERMEDIATE, HIDDEN), np.float32),
        layer + "mlp.dense_4h_to_h.weight": np.zeros((HIDDEN, INTERMEDIATE), np.float32),
        "transformer.encoder.final_layernorm.weight": np.ones(HIDDEN, np.float32),
        "transformer.output_layer.weight": output,
    }
    for name, tensor in tensors.items():
        out.write(struct.pack("<i", len(name)) + name.encode())
        out.write(struct.pack(f"<i{tensor.ndim}i", tensor.ndim, *tensor.shape))
        out.write(struct.pack("<i", 0))  # F32
        out.write(b"\0" * (-out.tell() % ALIGNMENT))
        out.write(tensor.tobytes())
