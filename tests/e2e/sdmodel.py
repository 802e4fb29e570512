"""The smallest model stable-diffusion.cpp's sd-server loads: SDXS-512-DS, an SD1-family
model (its text encoder 768 wide) with a UNet of three levels and no middle block, which
sd.cpp decodes and encodes with a tiny autoencoder (TAESD) held in the same file. sd.cpp
reads no sizes from the file, only the tensors' names and shapes, so every tensor is here at
its real shape, with random weights: linear weights in Q4_0, convolutions in F16 (sd.cpp
computes them in F16 whatever the file says), norms of one and biases of zero. About 520 MB,
written in seconds; the same file each time, so the same request draws the same picture."""

from __future__ import annotations

import pathlib

import gguf
import numpy as np

from .tinymodel import finished

TEXT = "cond_stage_model.transformer.text_model"
UNET = "model.diffusion_model"
CONTEXT = 768  # the text encoder's width, which makes the model SD1-family
TIME = 1280  # the UNet's time embedding: four times its 320 channels


def _linear(shapes: dict, name: str, inputs: int, outputs: int, bias: bool = True) -> None:
    shapes[name + ".weight"] = (outputs, inputs)
    if bias:
        shapes[name + ".bias"] = (outputs,)


def _conv(shapes: dict, name: str, inputs: int, outputs: int, kernel: int = 3, bias=True) -> None:
    shapes[name + ".weight"] = (outputs, inputs, kernel, kernel)
    if bias:
        shapes[name + ".bias"] = (outputs,)


def _norm(shapes: dict, name: str, width: int) -> None:
    shapes[name + ".weight"] = (width,)
    shapes[name + ".bias"] = (width,)


def _residual(shapes: dict, name: str, inputs: int, outputs: int) -> None:
    _norm(shapes, name + ".in_layers.0", inputs)
    _conv(shapes, name + ".in_layers.2", inputs, outputs)
    _linear(shapes, name + ".emb_layers.1", TIME, outputs)
    _norm(shapes, name + ".out_layers.0", outputs)
    _conv(shapes, name + ".out_layers.3", outputs, outputs)
    if inputs != outputs:
        _conv(shapes, name + ".skip_connection", inputs, outputs, kernel=1)


def _transformer(shapes: dict, name: str, width: int) -> None:
    _norm(shapes, name + ".norm", width)
    _conv(shapes, name + ".proj_in", width, width, kernel=1)
    _conv(shapes, name + ".proj_out", width, width, kernel=1)
    block = name + ".transformer_blocks.0"
    for attention, keys in (("attn1", width), ("attn2", CONTEXT)):
        _linear(shapes, f"{block}.{attention}.to_q", width, width, bias=False)
        _linear(shapes, f"{block}.{attention}.to_k", keys, width, bias=False)
        _linear(shapes, f"{block}.{attention}.to_v", keys, width, bias=False)
        _linear(shapes, f"{block}.{attention}.to_out.0", width, width)
    _linear(shapes, block + ".ff.net.0.proj", width, width * 8)
    _linear(shapes, block + ".ff.net.2", width * 4, width)
    for norm in ("norm1", "norm2", "norm3"):
        _norm(shapes, f"{block}.{norm}", width)


def _unet(shapes: dict) -> None:
    """SDXS-512-DS's UNet: levels of 320, 640 and 1280 channels, one residual block each,
    attention at the lower two, no middle block."""
    _linear(shapes, UNET + ".time_embed.0", 320, TIME)
    _linear(shapes, UNET + ".time_embed.2", TIME, TIME)
    _conv(shapes, UNET + ".input_blocks.0.0", 4, 320)
    _residual(shapes, UNET + ".input_blocks.1.0", 320, 320)
    _conv(shapes, UNET + ".input_blocks.3.0.op", 320, 320)
    _residual(shapes, UNET + ".input_blocks.4.0", 320, 640)
    _transformer(shapes, UNET + ".input_blocks.4.1", 640)
    _conv(shapes, UNET + ".input_blocks.6.0.op", 640, 640)
    _residual(shapes, UNET + ".input_blocks.7.0", 640, 1280)
    _transformer(shapes, UNET + ".input_blocks.7.1", 1280)
    for block, inputs, outputs, attended in (
        (0, 2560, 1280, True), (1, 1920, 1280, True), (3, 1920, 640, True),
        (4, 960, 640, True), (6, 960, 320, False), (7, 640, 320, False),
    ):  # fmt: skip
        _residual(shapes, f"{UNET}.output_blocks.{block}.0", inputs, outputs)
        if attended:
            _transformer(shapes, f"{UNET}.output_blocks.{block}.1", outputs)
    _conv(shapes, UNET + ".output_blocks.2.1.conv", 1280, 1280)
    _conv(shapes, UNET + ".output_blocks.5.2.conv", 640, 640)
    _norm(shapes, UNET + ".out.0", 320)
    _conv(shapes, UNET + ".out.2", 320, 4)


def _text_encoder(shapes: dict) -> None:
    """CLIP ViT-L/14's text encoder, all twelve layers (sd.cpp needs each)."""
    shapes[TEXT + ".embeddings.token_embedding.weight"] = (49408, CONTEXT)
    shapes[TEXT + ".embeddings.position_embedding.weight"] = (77, CONTEXT)
    for layer in range(12):
        name = f"{TEXT}.encoder.layers.{layer}"
        for part in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(shapes, f"{name}.self_attn.{part}", CONTEXT, CONTEXT)
        _norm(shapes, name + ".layer_norm1", CONTEXT)
        _norm(shapes, name + ".layer_norm2", CONTEXT)
        _linear(shapes, name + ".mlp.fc1", CONTEXT, 3072)
        _linear(shapes, name + ".mlp.fc2", 3072, CONTEXT)
    _norm(shapes, TEXT + ".final_layer_norm", CONTEXT)


def _autoencoder(shapes: dict) -> None:
    """TAESD of 64 channels, decoder and encoder (sd-server encodes the pictures of edits)."""

    def blocks(name: str, places: tuple) -> None:
        for place in places:
            for conv in ("0", "2", "4"):
                _conv(shapes, f"{name}.{place}.conv.{conv}", 64, 64)

    decoder, encoder = "tae.decoder.layers", "tae.encoder.layers"
    _conv(shapes, decoder + ".0", 4, 64)
    blocks(decoder, (2, 3, 4, 7, 8, 9, 12, 13, 14, 17))
    for place in (6, 11, 16):
        _conv(shapes, f"{decoder}.{place}", 64, 64, bias=False)
    _conv(shapes, decoder + ".18", 64, 3)
    _conv(shapes, encoder + ".0", 3, 64)
    blocks(encoder, (1, 3, 4, 5, 7, 8, 9, 11, 12, 13))
    for place in (2, 6, 10):
        _conv(shapes, f"{encoder}.{place}", 64, 64, bias=False)
    _conv(shapes, encoder + ".14", 64, 4)


def _q4_0(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Random Q4_0 blocks of ``shape``: each a small finite f16 scale, then 32 nibbles."""
    rows, blocks = int(np.prod(shape[:-1])), shape[-1] // 32
    data = np.empty((rows, blocks, 18), np.uint8)
    data[..., :2] = np.frombuffer(np.float16(0.005).tobytes(), np.uint8)
    data[..., 2:] = rng.integers(0, 256, (rows, blocks, 16), dtype=np.uint8)
    return data.reshape(*shape[:-1], blocks * 18)


def write_sd_model(path: pathlib.Path) -> pathlib.Path:
    """Write the model at ``path``; return the path."""
    shapes: dict = {}
    _unet(shapes)
    _text_encoder(shapes)
    _autoencoder(shapes)
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), "sd", use_temp_file=True)
    for name, shape in shapes.items():
        if len(shape) == 1:
            ones = name.endswith(".weight")
            writer.add_tensor(name, (np.ones if ones else np.zeros)(shape, np.float32))
        elif len(shape) == 2 and "position_embedding" not in name:
            writer.add_tensor(name, _q4_0(shape, rng), raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        else:
            weights = rng.standard_normal(shape, dtype=np.float32) * 0.02
            writer.add_tensor(name, weights.astype(np.float16))
    return finished(writer, {}, pathlib.Path(path))
