"""Model files the native loader must never see: each is a clear error naming the file."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from proxy.backends.chatglm import ggmlfile
from tests.backends.chatglm.tinymodels import write_glm4

HEADER = 12  # magic, model type, version
VOCAB_AT = HEADER + 4
HEADS_AT = HEADER + 12


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    path = write_glm4(tmp_path_factory.mktemp("modelfile") / "good.bin", [b"Hi", b" there"])
    return path.read_bytes()


def patched(data: bytes, at: int, fmt: str, *values) -> bytes:
    size = struct.calcsize(fmt)
    return data[:at] + struct.pack(fmt, *values) + data[at + size :]


def test_a_good_file(good, models):
    glm4 = ggmlfile.inspect(str(models.reply))
    assert (glm4.model_type, glm4.type_name, glm4.max_length) == (4, "GLM-4", 8192)
    assert glm4.token_count == 256 + 7 + 14  # bytes, longer scripted pieces, special tokens
    chatglm3 = ggmlfile.inspect(str(models.tool))
    assert chatglm3.type_name == "ChatGLM3" and chatglm3.token_count > 256 + 9


NORM = b"transformer.encoder.layers.0.input_layernorm.weight"  # a tensor of one dimension


def second_tensor_at(data: bytes) -> int:
    return data.index(struct.pack("<i", len(NORM)) + NORM)


def norm_type_at(data: bytes) -> int:
    return second_tensor_at(data) + 4 + len(NORM) + 4 + 4


BROKEN = {
    "empty": (lambda d: b"", "ends too early"),
    "truncated-header": (lambda d: d[:20], "ends too early"),
    "truncated-tensor": (lambda d: d[:-100], "runs past the end of the file"),
    "trailing-bytes": (lambda d: d + b"\0\0\0", "ends too early"),
    "missing-tensor": (lambda d: d[: second_tensor_at(d)], "is missing"),
    "bad-magic": (lambda d: b"lmgg" + d[4:], "'ggml' magic"),
    "gguf": (lambda d: b"GGUF" + d[4:], "GGUF"),
    "vision": (lambda d: patched(d, 4, "<i", 1004), "GLM-4V"),
    "unknown-type": (lambda d: patched(d, 4, "<i", 9), "unknown model type 9"),
    "bad-version": (lambda d: patched(d, 8, "<i", 1), "version 1 of GLM-4"),
    "zero-heads": (lambda d: patched(d, HEADS_AT, "<i", 0), "below 1"),
    "odd-heads": (lambda d: patched(d, HEADS_AT, "<i", 3), "heads"),
    "bad-dtype": (lambda d: patched(d, HEADER, "<i", 99), "weight type 99"),
    "small-vocab": (lambda d: patched(d, VOCAB_AT, "<i", 260), "tokenizer has"),
    "huge-tokenizer": (lambda d: patched(d, HEADER + 52, "<i", 2**31 - 1), "tokenizer size"),
    "bad-tensor-type": (lambda d: patched(d, norm_type_at(d), "<i", 77), "bad type"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_are_refused_by_name(name, good, tmp_path):
    damage, message = BROKEN[name]
    path = tmp_path / f"{name}.bin"
    path.write_bytes(damage(good))
    with pytest.raises(ValueError) as info:
        ggmlfile.inspect(str(path))
    assert str(path) in str(info.value) and message in str(info.value)


@pytest.mark.parametrize(
    "path, message",
    [("missing/model.bin", "No such file"), (".", "Is a directory")],
    ids=["missing", "directory"],
)
def test_unreadable_paths(path, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        ggmlfile.inspect(str(tmp_path / path))


def test_a_broken_sentencepiece_tokenizer(models, tmp_path):
    data = Path(models.tool).read_bytes()
    at = HEADER + 52
    (size,) = struct.unpack_from("<i", data, at)
    path = tmp_path / "bad-spm.bin"
    path.write_bytes(data[: at + 4] + b"\xff" * size + data[at + 4 + size :])
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        ggmlfile.inspect(str(path))
