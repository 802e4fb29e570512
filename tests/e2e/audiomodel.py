"""A tiny model that hears: a scripted GGUF and its audio projector (an mmproj).

Real speech models are gigabytes and cannot be downloaded on the test machines, yet the
proxy must pass audio through to llama-server (a transcription's file, a chat's
``input_audio`` part) and bring its answer back. This pair answers one text when its prompt
holds no audio and another when it holds some, so a test can tell that the audio reached
the model, and counts a fixed number of prompt tokens for each clip.

How it works. The language model is a :mod:`.scriptedmodel` one whose second script is
triggered by a special token nobody types (:data:`TRIGGER`), as :mod:`.visionmodel`'s is.
The projector is llama.cpp's Qwen2-Audio kind ("qwen2a"): a whisper encoder (two
convolutions, one transformer layer, an average pool) and one linear projection. Every
weight is zero, so whatever the sound, every audio position comes out as the projection's
bias: the trigger token's embedding row. The audio's positions are the trigger's, and the
model answers :data:`AUDIO_ANSWER`. llama.cpp's front end is fixed for this kind: 16 kHz
mono, cut or padded to 30-second chunks of 3000 mel frames, which the encoder halves twice:
a clip takes :data:`AUDIO_TOKENS` prompt tokens for each 30 seconds begun, between
``<|audio_bos|>`` and ``<|audio_eos|>`` (plain text to this vocabulary), so the server needs
a context of well over that per slot (a transcription of a short clip counts 812).
"""

from __future__ import annotations

import io
import math
import pathlib
import struct
import wave

import numpy as np

from . import projector
from .projector import zeros
from .scriptedmodel import Script, Tokens, write_scripted_gguf
from .tinymodel import CHAT_TEMPLATE
from .visionmodel import trigger_embedding

TRIGGER = "<|sound|>"
TEXT_ANSWER = "No sound here."
AUDIO_ANSWER = "I hear a sound."
SAMPLE_RATE = 16000  # llama.cpp resamples any input to this
MEL_FRAMES = 3000  # one 30-second chunk, padded: 100 frames a second
AUDIO_TOKENS = MEL_FRAMES // 4  # the prompt tokens one clip takes (a stride-2 conv, a pool of 2)
TOKENS = Tokens(
    control=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
    bos="<|endoftext|>",
    eos="<|im_end|>",
    add_bos=False,
)
MEL_BINS = 16  # llama.cpp builds its filter bank for any count; fewer make a smaller file
AUDIO_WIDTH = 8  # the encoder's width: small, as its weights are zero
AUDIO_FF = 16


def write_audio_model(folder: pathlib.Path, name: str = "tiny-audio") -> tuple:
    """Write the language model and its projector into ``folder``; return both paths
    ``(model, mmproj)``: llama-server takes them as ``-m MODEL --mmproj MMPROJ``."""
    folder = pathlib.Path(folder)
    model = write_scripted_gguf(
        folder / f"{name}.gguf",
        [Script(TEXT_ANSWER), Script(AUDIO_ANSWER, trigger=TRIGGER)],
        TOKENS,
        CHAT_TEMPLATE,
        name=name,
    )
    mmproj = write_projector(folder / f"mmproj-{name}.gguf", trigger_embedding(model, TRIGGER))
    return model, mmproj


def write_projector(
    path: pathlib.Path, embedding: np.ndarray, name: str = "tiny-audio-projector"
) -> pathlib.Path:
    """Write an mmproj whose every audio position becomes ``embedding`` (its width is the
    language model's); return the path."""
    width, projection = AUDIO_WIDTH, len(embedding)
    keys = {"clip.projector_type": "qwen2a", "clip.audio.num_mel_bins": MEL_BINS}
    tensors = {
        # a convolution's bias is a column: it is added to each channel's row of frames
        "a.conv1d.1.weight": zeros(width, MEL_BINS, 3),
        "a.conv1d.1.bias": zeros(width, 1),
        "a.conv1d.2.weight": zeros(width, width, 3),
        "a.conv1d.2.bias": zeros(width, 1),
        # a row for each position after the stride-2 convolution, before the pool
        "a.position_embd.weight": zeros(MEL_FRAMES // 2, width),
        "mm.a.fc.weight": zeros(projection, width),
        "mm.a.fc.bias": np.asarray(embedding, np.float32),
    }
    return projector.write_projector(
        path, name, "audio", keys, tensors,
        width=width, feed_forward=AUDIO_FF, projection=projection, epsilon=1e-5,
        unbiased=("attn_k",),  # whisper's keys have no bias
    )  # fmt: skip


def wav(seconds: float = 1.0, frequency: float = 440.0, rate: int = SAMPLE_RATE) -> bytes:
    """A WAV file of a tone: 16-bit mono, ``rate`` samples a second."""
    count = int(seconds * rate)
    samples = (
        int(12000 * math.sin(2 * math.pi * frequency * index / rate)) for index in range(count)
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(struct.pack(f"<{count}h", *samples))
    return out.getvalue()
