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

from . import projector
from .projector import zeros
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
    width, projection = VISION_WIDTH, len(embedding)
    keys = {
        "clip.projector_type": "mlp",
        "clip.vision.image_size": IMAGE_SIZE,
        "clip.vision.patch_size": PATCH_SIZE,
        "clip.vision.image_mean": [0.5, 0.5, 0.5],
        "clip.vision.image_std": [0.5, 0.5, 0.5],
    }
    tensors = {
        "v.patch_embd.weight": zeros(width, 3, PATCH_SIZE, PATCH_SIZE),
        "v.position_embd.weight": zeros(IMAGE_TOKENS, width),
        "mm.0.weight": zeros(PROJECTOR_HIDDEN, width),
        "mm.0.bias": zeros(PROJECTOR_HIDDEN),
        "mm.2.weight": zeros(projection, PROJECTOR_HIDDEN),
        "mm.2.bias": np.asarray(embedding, np.float32),
    }
    return projector.write_projector(
        path, name, "vision", keys, tensors,
        width=width, feed_forward=VISION_FF, projection=projection, epsilon=1e-6,
    )  # fmt: skip
