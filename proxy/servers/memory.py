"""How much memory a model's server will take, before it starts: its weights, and the KV cache
its context, slots and cache types make, read from its GGUF file; an sd-server's, the files
of weights its command line names.

The shape is read with ``gguf``, llama.cpp's own reader, which follows the format as it
grows. ``xllamacpp``'s estimator was weighed and left out: made for sizing GPU offload, it
adds a fixed 512 MiB floor and a guessed graph size, four to eight times what small models
take. A server's measured memory (its resident set) corrects the estimate once it runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

from proxy.backends.servercpp import gguffile

# bytes per element of each KV cache type (quantized ones by their 32-element blocks)
CACHE_TYPE_BYTES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "iq4_nl": 18 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
}
OVERHEAD = 64 * 2**20  # compute buffers and the process itself, before it is measured


@dataclass(frozen=True)
class ModelShape:
    """What a model's memory depends on, from its GGUF file."""

    weights: int  # bytes of its tensors
    layers: int
    context: int  # the context it was trained with: llama-server's default
    key_width: int  # K values one token stores in the cache: KV heads × key length, all layers
    value_width: int


@dataclass(frozen=True)
class ServerSize:
    """A server's estimated need, in bytes, and its parts."""

    weights: int
    kv_cache: int
    overhead: int = OVERHEAD

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


def show(size: float) -> str:
    """A size as people read one: ``1.5 GiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def estimate(shape: ModelShape, args: Sequence[str]) -> ServerSize:
    """The need of a llama-server running ``shape`` with ``args`` (``-c``, ``-ctk``,
    ``-ctv``): its context (all slots share it) holds K and V for every layer."""
    context = _flag(args, ("-c", "--ctx-size"), int) or shape.context
    key_type = _flag(args, ("-ctk", "--cache-type-k"), str) or "f16"
    value_type = _flag(args, ("-ctv", "--cache-type-v"), str) or "f16"
    per_token = shape.key_width * CACHE_TYPE_BYTES.get(
        key_type, 2.0
    ) + shape.value_width * CACHE_TYPE_BYTES.get(value_type, 2.0)
    return ServerSize(shape.weights, int(context * per_token))


def drawing_estimate(command: Sequence[str]) -> int:
    """The memory an sd-server run by ``command`` needs: every file its command line names
    (its model, or the parts of one that come apart: a diffusion model, a VAE, text
    encoders), whose weights it holds as they are stored; its program, the first word, and
    folders are none of them, and a file named twice (a link of the hub's cache and its
    blob) counts once."""
    named = {
        os.path.realpath(word)
        for word in command[1:]
        if word and not word.startswith("-") and os.path.isfile(word)
    }
    return sum(os.path.getsize(path) for path in named)


def _flag(args: Sequence[str], names: tuple, kind) -> Optional[object]:
    """The value of the last of ``names`` in ``args`` (``-c 8192`` or ``--ctx-size=8192``)."""
    found = None
    for index, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name in names:
            found = value if equals else (args[index + 1] if index + 1 < len(args) else None)
    try:
        return kind(found) if found is not None else None
    except ValueError:
        return None


def read_shape(path: str) -> ModelShape:
    """The shape of the GGUF at ``path``; a ``ValueError`` when it is not one."""
    header = gguffile.read(path)
    if not header.architecture:
        raise ValueError(f"{path} names no architecture (general.architecture)")
    key = header.of_architecture
    layers = int(key("block_count", 0))
    heads = key("attention.head_count", 1)
    heads_kv = key("attention.head_count_kv", heads)
    width = int(key("embedding_length", 0))
    head = width // max(_most(heads), 1)
    key_length = int(key("attention.key_length", head))
    value_length = int(key("attention.value_length", head))
    return ModelShape(
        weights=header.tensor_bytes,
        layers=layers,
        context=int(key("context_length", 4096)),
        key_width=_over_layers(heads_kv, layers) * key_length,
        value_width=_over_layers(heads_kv, layers) * value_length,
    )


def _most(heads) -> int:
    return max(heads) if isinstance(heads, list) else int(heads)


def _over_layers(heads_kv, layers: int) -> int:
    """KV heads summed over the layers (some models give a count per layer)."""
    return sum(heads_kv) if isinstance(heads_kv, list) else int(heads_kv) * layers


def available(gpu: bool = False) -> int:
    """The memory servers may take by default: the GPUs' free memory when models are given
    GPU layers (``-ngl``) and a GPU is there, else the machine's available memory."""
    if gpu:
        free = sum(
            device["memory_free"]
            for device in _devices()
            if "CPU" not in str(device.get("type", ""))
        )
        if free:
            return free
    import psutil

    return psutil.virtual_memory().available


def _devices() -> list:
    try:
        import xllamacpp
    except ImportError:
        return []
    return xllamacpp.get_device_info()


def uses_gpu(args: Sequence[str]) -> bool:
    layers = _flag(args, ("-ngl", "--gpu-layers", "--n-gpu-layers"), int)
    return bool(layers and layers > 0)
