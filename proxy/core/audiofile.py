"""How long an audio file plays at most, read from its structure, never decoded: what a
budget holds for a clip before the engine hears it. Pure.

WAV (PCM and float) tells its frames and rate; FLAC's STREAMINFO its samples and rate; an MP3
is never denser than MPEG's lowest bitrate, 8 kbit/s, so its bytes bound its seconds. Anything
else (Ogg, WebM, MP4, a WAV of another coding, a FLAC that does not count its samples) is not
told: ``None``.
"""

from __future__ import annotations

import math
import struct
from typing import Optional

MP3_FEWEST_BYTES_PER_SECOND = 1000  # 8 kbit/s, MPEG-2.5 layer III's lowest bitrate
PCM_CODINGS = (1, 3, 0xFFFE)  # integer PCM, IEEE float, the extensible header of either
WINDOW_SECONDS = 30  # an audio projector hears a clip in windows of this many seconds
WINDOW_TOKENS = 750  # and makes at most this many tokens of each (Whisper's 1,500 frames, halved)


def seconds_at_most(raw: bytes, audio_format: str) -> Optional[float]:
    """The most seconds ``raw``, audio of ``audio_format``, plays (``None``: not told)."""
    if audio_format == "wav":
        return _wav_seconds(raw)
    if audio_format == "flac":
        return _flac_seconds(raw)
    if audio_format == "mp3":
        return len(raw) / MP3_FEWEST_BYTES_PER_SECOND
    return None


def tokens_at_most(seconds: float) -> int:
    """The most tokens a projector makes of a clip of ``seconds``: a window's for each
    window begun, one at least."""
    return WINDOW_TOKENS * max(1, math.ceil(seconds / WINDOW_SECONDS))


def _wav_seconds(raw: bytes) -> Optional[float]:
    """Frames over rate, the frames those the data chunk holds (never more than the file's
    bytes: a stream's header may declare any length)."""
    at, coding, rate, align = 12, None, 0, 0
    while at + 8 <= len(raw):
        name, size = raw[at : at + 4], struct.unpack_from("<I", raw, at + 4)[0]
        body = at + 8
        if name == b"fmt " and size >= 16 and body + 16 <= len(raw):
            coding, _, rate, _, align = struct.unpack_from("<HHIIH", raw, body)
        elif name == b"data":
            if coding not in PCM_CODINGS or not rate or not align:
                return None
            frames = min(size, len(raw) - body) // align
            return frames / rate
        at = body + size + (size & 1)  # chunks are padded to an even length
    return None


def _flac_seconds(raw: bytes) -> Optional[float]:
    """Samples over rate, from STREAMINFO, the first metadata block."""
    if len(raw) < 8 + 34 or raw[4] & 0x7F != 0:  # the block after "fLaC" is STREAMINFO
        return None
    packed = int.from_bytes(raw[8 + 10 : 8 + 18], "big")  # rate, channels, depth, samples
    rate, samples = packed >> 44, packed & ((1 << 36) - 1)
    if not rate or not samples:
        return None
    return samples / rate
