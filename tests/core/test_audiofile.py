"""How long a clip plays at most, read from its header: the seconds each format tells, and
``None`` where it tells none; the tokens a projector makes of them."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from proxy.core.audiofile import seconds_at_most, tokens_at_most


def wav(seconds: float, rate: int = 16000, width: int = 2, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(bytes(int(seconds * rate) * width * channels))
    return out.getvalue()


def flac(rate: int, samples: int) -> bytes:
    packed = (rate << 44) | (0 << 41) | (15 << 36) | samples  # mono, 16 bits
    info = bytes(10) + packed.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info


def recoded(raw: bytes, coding: int) -> bytes:
    """``raw``, a WAV, with its fmt chunk naming another coding."""
    return raw[:20] + struct.pack("<H", coding) + raw[22:]


def cut_declaring(raw: bytes, declared: int) -> bytes:
    """``raw``'s header declaring ``declared`` bytes of data, as a stream's does."""
    return raw[:40] + struct.pack("<I", declared) + raw[44:]


@pytest.mark.parametrize(
    "raw, kind, seconds",
    [
        (wav(1.0), "wav", 1.0),
        (wav(2.0, rate=8000, width=1, channels=2), "wav", 2.0),
        (cut_declaring(wav(0.5), 0xFFFFFFFF), "wav", 0.5),
        (recoded(wav(1.0), 2), "wav", None),  # ADPCM: its frames are not its bytes
        (b"RIFF\x24\x00\x00\x00WAVEdata\x00\x00\x00\x00", "wav", None),  # no fmt chunk
        (flac(16000, 48000), "flac", 3.0),
        (flac(16000, 0), "flac", None),  # samples not counted
        (b"fLaC", "flac", None),
        (b"ID3" + bytes(1997), "mp3", 2.0),
        (b"OggS" + bytes(100), "ogg", None),
    ],
    ids=["wav", "wav-8-bit-stereo", "wav-streamed", "wav-adpcm", "wav-no-fmt", "flac",
         "flac-uncounted", "flac-cut", "mp3", "ogg"],
)  # fmt: skip
def test_a_clips_seconds_are_what_its_header_tells(raw, kind, seconds):
    assert seconds_at_most(raw, kind) == seconds


@pytest.mark.parametrize(
    "seconds, tokens", [(0.0, 750), (1.0, 750), (30.0, 750), (30.5, 1500), (90.0, 2250)]
)
def test_a_projector_makes_a_windows_tokens_for_each_window_begun(seconds, tokens):
    assert tokens_at_most(seconds) == tokens
