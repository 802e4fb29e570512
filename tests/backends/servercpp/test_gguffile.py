"""A GGUF header read as gguf's own reader reads it, and a file that is no GGUF refused."""

from __future__ import annotations

import pathlib
import struct

import gguf
import numpy as np
import pytest

from proxy.backends.servercpp import gguffile


def write(path, endianess=gguf.GGUFEndian.LITTLE) -> str:
    """A GGUF with a value of every type, a vocabulary and tensors of two quantizations."""
    writer = gguf.GGUFWriter(str(path), "llama", endianess=endianess)
    writer.add_uint8("t.u8", 200)
    writer.add_int8("t.i8", -5)
    writer.add_uint16("t.u16", 60000)
    writer.add_int16("t.i16", -30000)
    writer.add_uint32("t.u32", 4_000_000_000)
    writer.add_int32("t.i32", -2_000_000_000)
    writer.add_float32("t.f32", 0.1)
    writer.add_bool("t.bool", True)
    writer.add_uint64("t.u64", 2**63)
    writer.add_int64("t.i64", -(2**62))
    writer.add_float64("t.f64", 0.1)
    writer.add_string("t.text", "héllo ⟨fim⟩")
    writer.add_context_length(8192)
    writer.add_token_list([f"tok{i}" for i in range(3000)] + ["<|fim_prefix|>", "é"])
    writer.add_token_scores([float(i) / 7 for i in range(3002)])
    writer.add_array("t.ints", [1, -2, 3])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_tensor("a", np.zeros((4, 64), dtype=np.float32))
    writer.add_tensor(
        "b",
        np.zeros((2, 34 * 2), dtype=np.uint8),
        raw_shape=(2, 34 * 2),  # bytes: two Q8_0 blocks of 32 per row
        raw_dtype=gguf.GGMLQuantizationType.Q8_0,
    )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def as_gguf_reads(path: str) -> tuple:
    """The fields and tensor totals by gguf's own reader."""
    reader = gguf.GGUFReader(path)
    fields = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        parts = [field.parts[index] for index in field.data]
        if gguf.GGUFValueType.STRING in field.types:
            values = [bytes(part).decode("utf-8") for part in parts]
        else:
            values = [part.tolist()[0] for part in parts]
        fields[name] = values if field.types[0] == gguf.GGUFValueType.ARRAY else values[0]
    tensors = reader.tensors
    return (fields, sum(int(t.n_bytes) for t in tensors), sum(int(t.n_elements) for t in tensors))


@pytest.mark.parametrize("endianess", [gguf.GGUFEndian.LITTLE, gguf.GGUFEndian.BIG])
def test_a_header_reads_as_gguf_reads_it(tmp_path, endianess):
    path = write(tmp_path / "every.gguf", endianess)
    header = gguffile.read(path)
    assert (header.fields, header.tensor_bytes, header.parameters) == as_gguf_reads(path)
    assert header.fields["t.text"] == "héllo ⟨fim⟩" and header.fields["t.u64"] == 2**63
    assert header.of_architecture("context_length") == 8192
    assert header.quantization == "Q8_0"
    assert header.parameters == 4 * 64 + 2 * 64
    assert header.tensor_bytes == 4 * 64 * 4 + 2 * 2 * 34


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda data: b"", "empty"),
        (lambda data: b"GGML" + data[4:], "it does not begin with GGUF"),
        (lambda data: data[:40], "past the end|unpack"),
        (lambda data: data[:16] + struct.pack("<Q", 2**62) + data[24:], "a count of"),
        (lambda data: data[:8] + struct.pack("<Q", 2**40) + data[16:], "a count of"),
        # the first field's name said to be longer than the file
        (lambda data: data[:24] + struct.pack("<Q", 2**50) + data[32:], "a count of"),
    ],
    ids=["empty", "other-magic", "cut", "fields-beyond", "tensors-beyond", "name-beyond"],
)
def test_a_file_that_is_no_whole_gguf_is_refused_naming_it(tmp_path, damage, reason):
    good = write(tmp_path / "every.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(damage(pathlib.Path(good).read_bytes()))
    with pytest.raises(ValueError, match=rf"{bad}.*({reason})"):
        gguffile.read(str(bad))


def test_a_real_models_header():
    from tests.e2e.smollm2 import smollm2

    header = gguffile.read(str(smollm2()))
    tokens = header.fields["tokenizer.ggml.tokens"]
    assert len(tokens) == 49152 and tokens[0] == "<|endoftext|>"
    assert len(header.fields["tokenizer.ggml.merges"]) == 48900
    assert (header.architecture, header.quantization) == ("llama", "Q4_1")
    assert header.parameters == 134_515_008
