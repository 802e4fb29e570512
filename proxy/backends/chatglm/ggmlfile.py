"""Check a chatglm.cpp model file before the native loader sees it.

chatglm.cpp 0.4.2 trusts its input: a truncated or malformed file makes it read past the
end of its mapping, fail an assertion (which aborts the whole process) or crash at the first
generation. Walking the header and the tensor table here turns all of that into a
``ValueError`` naming the file. The layout (``chatglm.cpp`` ``Pipeline::Pipeline`` and
``ModelLoader::read_state_dict``): ``ggml`` magic, model type, version, a config record, the
tokenizer, then tensors (name, shape, type, data aligned to 16 bytes) up to the end.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

TYPE_NAMES = {1: "ChatGLM", 2: "ChatGLM2", 3: "ChatGLM3", 4: "GLM-4"}
# Special tokens chatglm.cpp numbers after the tokenizer's own (ChatGLM-6B's are its pieces).
SPECIAL_TOKENS = {1: 0, 2: 5, 3: 9, 4: 14}
# ggml types convert.py writes: (elements, bytes) per block.
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34)}
ALIGNMENT = 16
GLM4V = 1004

# V1: dtype vocab hidden heads layers intermediate max_length bos eos pad sep; V1GQA: + kv_heads
V1 = struct.Struct("<11i")
V1GQA = struct.Struct("<12i")
# V2: dtype vocab hidden heads kv_heads layers intermediate eps virtual_tokens theta max_length
# eos pad
V2 = struct.Struct("<7ifif3i")
LAYER_TENSORS = (
    "input_layernorm.weight",
    "self_attention.query_key_value.weight",
    "self_attention.query_key_value.bias",
    "self_attention.dense.weight",
    "post_attention_layernorm.weight",
    "mlp.dense_h_to_4h.weight",
    "mlp.dense_4h_to_h.weight",
)


class BrokenModelError(Exception):
    """The file is not something chatglm.cpp can load safely."""


@dataclass(frozen=True)
class ModelFile:
    """What the proxy needs to know about a model file before loading it."""

    model_type: int
    max_length: int
    token_count: int  # ids the tokenizer can decode; the embedding may be padded past them

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.model_type]


@dataclass(frozen=True)
class _Config:
    dtype: int
    vocab: int
    hidden: int
    heads: int
    kv_heads: int
    layers: int
    max_length: int
    eos: int


def inspect(path: str) -> ModelFile:
    """Read and check ``path``; raise ``ValueError`` naming it if chatglm.cpp must not load it."""
    try:
        with open(path, "rb") as handle:
            return _read(_ModelReader(handle, os.fstat(handle.fileno()).st_size))
    except OSError as exc:
        raise ValueError(f"cannot read the model file {path}: {exc.strerror}") from None
    except BrokenModelError as exc:
        raise ValueError(f"{path} is not a chatglm.cpp model file it can load: {exc}") from None


class _ModelReader:
    """A model file read in order, each read whole or the file is broken."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size

    def read(self, count: int) -> bytes:
        data = self.handle.read(count)
        if len(data) < count:
            raise BrokenModelError("it ends too early (truncated?)")
        return data

    def ints(self, count: int) -> tuple:
        return struct.unpack(f"<{count}i", self.read(4 * count))

    def tell(self) -> int:
        return self.handle.tell()


def _read(reader: _ModelReader) -> ModelFile:
    magic = reader.read(4)
    if magic == b"GGUF":
        raise BrokenModelError(
            "it is a GGUF file (llama.cpp's format); convert the model with chatglm_cpp.convert"
        )
    if magic != b"ggml":
        raise BrokenModelError("it does not start with the 'ggml' magic")
    model_type, version = reader.ints(2)
    if model_type == GLM4V:
        raise BrokenModelError("GLM-4V (vision) models are not supported")
    if model_type not in TYPE_NAMES:
        raise BrokenModelError(f"unknown model type {model_type}")
    config = _config(reader, model_type, version)
    (size,) = reader.ints(1)
    if not 0 < size <= reader.size - reader.tell():
        raise BrokenModelError(f"its tokenizer size {size} does not fit in the file")
    tokenizer = reader.read(size)
    # GLM-4's tokenizer is text, one "<base64> <rank>" line per token; the others SentencePiece
    own = len(tokenizer.split()) // 2 if model_type == 4 else _sentencepiece_size(tokenizer)
    token_count = own + SPECIAL_TOKENS[model_type]
    if token_count > config.vocab:
        raise BrokenModelError(
            f"its tokenizer has {token_count} tokens but the model only {config.vocab}"
        )
    names = _tensor_names(reader)
    if model_type != 1:  # ChatGLM-6B's loader looks its tensors up itself; the others do not
        missing = sorted(_required_tensors(config.layers) - names)
        if missing:
            raise BrokenModelError(f"tensor {missing[0]} is missing")
    return ModelFile(model_type, config.max_length, token_count)


def _config(reader: _ModelReader, model_type: int, version: int) -> _Config:
    if version == 2:
        (dtype, vocab, hidden, heads, kv_heads, layers, _, _, virtual, _, max_length, eos, _) = (
            V2.unpack(reader.read(V2.size))
        )
        if virtual < 0:
            raise BrokenModelError("its prefix length is negative")
    elif version == 1 and model_type in (1, 2, 3):
        record = (
            V1.unpack(reader.read(V1.size))
            if model_type == 1
            else V1GQA.unpack(reader.read(V1GQA.size))
        )
        dtype, vocab, hidden, heads, layers, _, max_length, _, eos = record[:9]
        kv_heads = record[11] if model_type != 1 else heads
    else:
        raise BrokenModelError(
            f"version {version} of {TYPE_NAMES[model_type]} files is not supported"
        )
    config = _Config(dtype, vocab, hidden, heads, kv_heads, layers, max_length, eos)
    if min(vocab, hidden, heads, kv_heads, layers, max_length) < 1:
        raise BrokenModelError("its config has a size below 1")
    if dtype not in BLOCKS:
        raise BrokenModelError(f"its weight type {dtype} is not one chatglm.cpp writes")
    if hidden % heads or heads % kv_heads or (hidden // heads) % 2:
        raise BrokenModelError("its attention heads do not divide its hidden size")
    if not 0 <= eos < vocab:
        raise BrokenModelError(f"its end-of-text id {eos} is not in its vocabulary")
    return config


def _sentencepiece_size(proto: bytes) -> int:
    """Count the pieces (field 1) of a serialized SentencePiece ``ModelProto``."""
    count = at = 0
    while at < len(proto):
        key, at = _varint(proto, at)
        wire = key & 7
        if wire == 0:
            _, at = _varint(proto, at)
        elif wire == 2:
            length, at = _varint(proto, at)
            at += length
            count += key >> 3 == 1
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise BrokenModelError("its tokenizer is not a SentencePiece model")
    if at != len(proto) or not count:
        raise BrokenModelError("its tokenizer is not a SentencePiece model")
    return count


def _varint(data: bytes, at: int) -> tuple:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise BrokenModelError("its tokenizer is not a SentencePiece model")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        shift += 7
        if not byte & 0x80:
            return value, at


def _tensor_names(reader: _ModelReader) -> set:
    names = set()
    while reader.tell() < reader.size:
        (length,) = reader.ints(1)
        if not 0 < length <= 1024:
            raise BrokenModelError(f"a tensor name of {length} bytes at offset {reader.tell()}")
        name = reader.read(length).decode("utf-8", "replace")
        (ndim,) = reader.ints(1)
        if not 1 <= ndim <= 4:
            raise BrokenModelError(f"tensor {name} has {ndim} dimensions")
        shape = reader.ints(ndim)
        (dtype,) = reader.ints(1)
        if dtype not in BLOCKS or min(shape) < 1 or shape[-1] % BLOCKS[dtype][0]:
            raise BrokenModelError(f"tensor {name} has a bad type or shape")
        elements, block_bytes = BLOCKS[dtype]
        start = -(-reader.tell() // ALIGNMENT) * ALIGNMENT
        end = start + math.prod(shape) // elements * block_bytes
        if end > reader.size:
            raise BrokenModelError(f"tensor {name} runs past the end of the file (truncated?)")
        reader.handle.seek(end)
        names.add(name)
    return names


def _required_tensors(layers: int) -> set:
    names = {
        "transformer.embedding.word_embeddings.weight",
        "transformer.encoder.final_layernorm.weight",
        "transformer.output_layer.weight",
    }
    for layer in range(layers):
        names.update(f"transformer.encoder.layers.{layer}.{part}" for part in LAYER_TENSORS)
    return names
