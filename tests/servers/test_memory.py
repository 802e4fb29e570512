"""Memory estimates: sizes as operators write them, and the KV cache a context makes."""

from __future__ import annotations

import pytest

from proxy.config.files import parse_size
from proxy.servers.memory import (
    ModelShape,
    ServerSize,
    drawing_estimate,
    estimate,
    read_shape,
    show,
    uses_gpu,
)
from tests.e2e.tinymodel import write_tiny_llama_gguf

MIB = 2**20
# a 7B llama: 32 layers, 8 KV heads of 128 values (grouped-query attention)
SEVEN_B = ModelShape(
    weights=4 * 2**30, layers=32, context=32768, key_width=32 * 8 * 128, value_width=32 * 8 * 128
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("20GiB", 20 * 2**30),
        ("512 MiB", 512 * MIB),
        ("8g", 8 * 2**30),
        ("1.5GiB", 3 * 2**29),
        ("1000", 1000),
        ("2GB", 2 * 10**9),
    ],
)
def test_sizes_as_operators_write_them(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "20 parsecs", "", "-1GiB"])
def test_what_is_no_size_says_so(text):
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("args", "kv_mib"),
    [
        ([], 4096),
        (["-c", "8192"], 1024),
        (["--ctx-size=8192"], 1024),
        (["-c", "8192", "-ctk", "q8_0", "-ctv", "q8_0"], 544),
        (["-c", "8192", "-ctk", "q4_0"], 512 + 144),
        (["-c", "4096", "-np", "4"], 512),
        (["-c", "2048", "-ctk", "f32", "-ctv", "f32"], 512),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_the_kv_cache_a_context_makes(args, kv_mib):
    size = estimate(SEVEN_B, args)
    assert size.kv_cache == kv_mib * MIB
    assert size.total == SEVEN_B.weights + kv_mib * MIB + size.overhead


def test_a_gguf_files_shape(tmp_path):
    shape = read_shape(str(write_tiny_llama_gguf(tmp_path / "tiny.gguf")))
    assert shape == ModelShape(
        weights=690944, layers=2, context=2048, key_width=128, value_width=128
    )


def test_a_file_that_is_no_gguf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="is not a GGUF model file"):
        read_shape(str(path))


def test_shown_sizes_and_gpu_layers():
    assert show(ServerSize(0, 0).total) == "64.0 MiB" and show(3 * 2**30) == "3.0 GiB"
    assert uses_gpu(["-ngl", "99"]) and not uses_gpu(["-ngl", "0"]) and not uses_gpu([])


def test_an_sd_server_needs_every_file_of_weights_its_command_line_names(tmp_path):
    """FLUX's parts come apart: the diffusion model, its VAE and text encoders each count;
    its program, a folder, a flag's number and a file named twice do not."""
    program = tmp_path / "sd-server"
    program.write_bytes(b"\0" * 4096)
    parts = {"flux.gguf": 3000, "ae.safetensors": 200, "t5xxl.gguf": 1000}
    for name, size in parts.items():
        (tmp_path / name).write_bytes(b"\0" * size)
    (tmp_path / "loras").mkdir()
    (tmp_path / "again.gguf").symlink_to(tmp_path / "flux.gguf")  # the hub's cache links so
    command = (str(program), "--listen-port", "8080", "--diffusion-model",
               str(tmp_path / "flux.gguf"), "--vae", str(tmp_path / "ae.safetensors"),
               "--t5xxl", str(tmp_path / "t5xxl.gguf"), "--lora-model-dir",
               str(tmp_path / "loras"), "-m", str(tmp_path / "again.gguf"))  # fmt: skip
    assert drawing_estimate(command) == 3000 + 200 + 1000
    assert drawing_estimate((str(program), "--listen-port", "8080")) == 0
