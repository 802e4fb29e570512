"""A tiny model that sees pictures: a scripted GGUF and its vision projector (an mmproj).

Real vision models are gigabytes and cannot be downloaded on the test machines, yet the
proxy must pass images through to llama-server and back. This pair answers one text when
its prompt holds no image and another when it holds one, so a test can tell that the image
reached the model, and counts a fixed number of prompt tokens for each image.

How it works. The language model is a :mod:`.scriptedmodel` one whose second script is
triggered by a special token nobody types (:data:`TRIGGER`). The projector is llama.cpp's
LLaVA kind ("mlp") with one encoder layer, which its graph skips (LLaVA reads the layer
before the last); its two-layer projection has zero weights, so every image patch comes out
as the second layer's bias: the trigger token's embedding row. The image's positions are
the trigger's, and the model answers :data:`IMAGE_ANSWER`.
"""

from __future__ import annotations

import pathlib

import gguf
import numpy as np

from .scriptedmodel import Script, Tokens, write_scripted_gguf
from .tinymodel import CHAT_TEMPLATE

TRIGGER = "<|picture|>"
TEXT_ANSWER = "No picture here."
IMAGE_ANSWER = "I see a picture."
IMAGE_SIZE = 56  # every image is resized to this square
PATCH_SIZE = 14
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # the prompt tokens one image takes
TOKENS = Tokens(
    control=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
    bos="<|endoftext|>",
    eos="<|im_end|>",
    add_bos=False,
)
VISION_WIDTH = 8  # the encoder's width: small, as its layer never runs
VISION_FF = 16  # differs from VISION_WIDTH, else llama.cpp takes up and down as swapped
PROJECTOR_HIDDEN = 8


def write_vision_model(folder: pathlib.Path, name: str = "tiny-vision") -> tuple:
    """Write the language model and its projector into ``folder``; return both paths
    ``(model, mmproj)``: llama-server takes them as ``-m MODEL --mmproj MMPROJ``."""
    folder = pathlib.Path(folder)
    model = write_scripted_gguf(
        folder / f"{name}.gguf",
        [Script(TEXT_ANSWER), Script(IMAGE_ANSWER, trigger=TRIGGER)],
        TOKENS,
        CHAT_TEMPLATE,
        name=name,
    )
    mmproj = write_projector(folder / f"mmproj-{name}.gguf", trigger_embedding(model))
    return model, mmproj


def trigger_embedding(model: pathlib.Path, trigger: str = TRIGGER) -> np.ndarray:
    """The embedding row of ``trigger`` in the written ``model``."""
    reader = gguf.GGUFReader(str(model))
    field = reader.fields["tokenizer.ggml.tokens"]
    texts = [bytes(field.parts[index]).decode("utf-8") for index in field.data]
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    rows = np.asarray(tensor.data, dtype=np.float32).reshape(len(texts), -1)
    return rows[texts.index(trigger)].copy()


def write_projector(
    path: pathlib.Path, embedding: np.ndarray, name: str = "tiny-vision-projector"
) -> pathlib.Path:
    """Write an mmproj whose every image patch becomes ``embedding`` (its width is the
    language model's); return the path."""
    path = pathlib.Path(path)
    width = VISION_WIDTH
    projection = len(embedding)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_uint32("clip.vision.embedding_length", width)
    writer.add_uint32("clip.vision.feed_forward_length", VISION_FF)
    writer.add_uint32("clip.vision.block_count", 1)
    writer.add_uint32("clip.vision.projection_dim", projection)
    writer.add_uint32("clip.vision.attention.head_count", 1)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    def zeros(*shape: int) -> np.ndarray:
        return np.zeros(shape, np.float32)

    tensors = {
        "v.patch_embd.weight": zeros(width, 3, PATCH_SIZE, PATCH_SIZE),
        "v.position_embd.weight": zeros(IMAGE_TOKENS, width),
        "mm.0.weight": zeros(PROJECTOR_HIDDEN, width),
        "mm.0.bias": zeros(PROJECTOR_HIDDEN),
        "mm.2.weight": zeros(projection, PROJECTOR_HIDDEN),
        "mm.2.bias": np.asarray(embedding, np.float32),
    }
    layer = "v.blk.0."
    for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
        tensors[layer + part + ".weight"] = zeros(width, width)
        tensors[layer + part + ".bias"] = zeros(width)
    for part in ("ln1", "ln2"):
        tensors[layer + part + ".weight"] = np.ones(width, np.float32)
        tensors[layer + part + ".bias"] = zeros(width)
    tensors[layer + "ffn_up.weight"] = zeros(VISION_FF, width)
    tensors[layer + "ffn_up.bias"] = zeros(VISION_FF)
    tensors[layer + "ffn_down.weight"] = zeros(width, VISION_FF)
    tensors[layer + "ffn_down.bias"] = zeros(width)
    for tensor_name, tensor in tensors.items():
        writer.add_tensor(tensor_name, tensor)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
