"""A multimodal projector (an mmproj) of one encoder layer, its sizes as small as llama.cpp
loads: what :mod:`.visionmodel` and :mod:`.audiomodel` write, each with its own stem and
projection. Every weight is zero but the norms' (ones) and the projection's last bias, which
the caller gives: every position of an image or a clip comes out as that bias."""

from __future__ import annotations

import pathlib

import gguf
import numpy as np

from .tinymodel import finished


def zeros(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def write_projector(
    path: pathlib.Path,
    name: str,
    modality: str,
    keys: dict,
    tensors: dict,
    *,
    width: int,
    feed_forward: int,
    projection: int,
    epsilon: float,
    unbiased: tuple = (),
) -> pathlib.Path:
    """Write the mmproj at ``path``: ``modality`` (``vision`` or ``audio``) with its own
    ``keys`` (``clip.projector_type`` among them) and ``tensors`` (its stem and projection),
    and one encoder layer of ``width`` and ``feed_forward``, whose attention parts
    ``unbiased`` have no bias; return the path."""
    path = pathlib.Path(path)
    prefix = f"clip.{modality}."
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_bool(f"clip.has_{modality}_encoder", True)
    writer.add_uint32(prefix + "embedding_length", width)
    writer.add_uint32(prefix + "feed_forward_length", feed_forward)
    writer.add_uint32(prefix + "block_count", 1)
    writer.add_uint32(prefix + "projection_dim", projection)
    writer.add_uint32(prefix + "attention.head_count", 1)
    writer.add_float32(prefix + "attention.layer_norm_epsilon", epsilon)
    for key, value in keys.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, list):
            writer.add_array(key, value)
        else:
            writer.add_uint32(key, value)
    layer = f"{modality[0]}.blk.0."
    tensors = dict(tensors)
    for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
        tensors[layer + part + ".weight"] = zeros(width, width)
        if part not in unbiased:
            tensors[layer + part + ".bias"] = zeros(width)
    for part in ("ln1", "ln2"):
        tensors[layer + part + ".weight"] = np.ones(width, np.float32)
        tensors[layer + part + ".bias"] = zeros(width)
    tensors[layer + "ffn_up.weight"] = zeros(feed_forward, width)
    tensors[layer + "ffn_up.bias"] = zeros(feed_forward)
    tensors[layer + "ffn_down.weight"] = zeros(width, feed_forward)
    tensors[layer + "ffn_down.bias"] = zeros(width)
    return finished(writer, tensors, path)
