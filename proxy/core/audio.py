"""What the audio routes ask of a model: a transcription (or translation) of an uploaded
file, and speech of a text; the values the audio dialect reads and the backends send."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from proxy.core import audiofile, textsize
from proxy.core.answers import ESTIMATED, Usage, told_tokens
from proxy.core.errors import InvalidRequestError
from proxy.core.sse import EVENT_STREAM
from proxy.core.types import Sound

# what a transcription's answer is written as, and its content type
TRANSCRIPT_FORMATS = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}
GRANULARITIES = ("word", "segment")
# speech's audio formats, and their content types
SPEECH_FORMATS = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
STREAM_FORMATS = ("audio", "sse")
LONGEST_SPEECH = 4096  # characters of text one speech request may hold (OpenAI's bound)


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its name, its content type as the client said it, and its bytes."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Transcription:
    """A transcription (or translation) as the proxy sends it on: the audio, its model, the
    form's other fields as they came, and the answer's format."""

    model: Optional[str]
    task: str  # transcriptions, or translations (into English)
    audio: Upload
    audio_format: str  # as its first bytes say: wav, mp3, flac, ogg, webm, mp4
    fields: Mapping[str, Any]  # the form's fields but ``file`` (``model`` among them)
    response_format: str = "json"
    stream: bool = False

    @property
    def content_type(self) -> str:
        return EVENT_STREAM if self.stream else TRANSCRIPT_FORMATS[self.response_format]

    @property
    def seconds(self) -> Optional[float]:
        """The most seconds the audio plays (``None``: its header does not tell)."""
        return audiofile.seconds_at_most(self.audio.data, self.audio_format)

    @property
    def tokens(self) -> Optional[int]:
        """The most tokens an audio projector makes of the audio (``None``: its header does
        not tell its length)."""
        seconds = self.seconds
        return None if seconds is None else audiofile.tokens_at_most(seconds)

    @property
    def counted_seconds(self) -> int:
        """The seconds a price by the second counts: each begun counted whole (0: its
        header does not tell)."""
        seconds = self.seconds
        return 0 if seconds is None else math.ceil(seconds)


@dataclass(frozen=True)
class Transcript:
    """An engine's transcript, as the client is answered it, and the tokens the engine
    counted (``None``: it told none)."""

    content: bytes
    usage: Optional[Usage] = None


def estimated(asked: Transcription, said: int) -> Usage:
    """The usage of a transcript whose engine told none: its audio's windows (one, where
    its header tells no length) and ``said`` bytes of text."""
    tokens = asked.tokens or audiofile.WINDOW_TOKENS
    return Usage(tokens, textsize.about(said), how=ESTIMATED)


def told_usage(answer: bytes) -> Optional[Usage]:
    """The tokens a transcript's JSON tells (OpenAI's ``usage`` of type ``tokens``)."""
    return told_tokens(answer, "tokens")


@dataclass(frozen=True)
class Speech:
    """Speech as the proxy sends it on: the body as it came, and what its answer is."""

    model: Optional[str]
    text: str
    body: Mapping[str, Any]
    response_format: str = "mp3"
    stream_format: str = "audio"

    @property
    def content_type(self) -> str:
        return EVENT_STREAM if self.stream_format == "sse" else SPEECH_FORMATS[self.response_format]


def audio_format(data: bytes) -> Optional[str]:
    """The format of an audio file by its first bytes (``None``: none the engines read)."""
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def sound_of(data: str, field: str, most: int, at: int = 0) -> Sound:
    """The sound whose bytes ``data`` holds in base64: a whole base64 text of at most
    ``most`` bytes, of a format the engines read (its first bytes say which)."""
    if len(data) > 4 * -(-most // 3):
        raise InvalidRequestError(
            f"'{field}' is more than {most} bytes of audio (--max-audio-size)", param=field
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            f"'{field}' is not base64 text, or is cut short", param=field
        ) from None
    found = audio_format(raw)
    if found is None:
        raise InvalidRequestError(
            f"'{field}' is not audio of a format the engines read (WAV, MP3, FLAC, Ogg, WebM "
            "or MP4, by its first bytes)",
            param=field,
        )
    seconds = audiofile.seconds_at_most(raw, found)
    tokens = None if seconds is None else audiofile.tokens_at_most(seconds)
    return Sound(field, at, found, data, tokens=tokens)


def unheard(sound: Sound, model: str, why: str) -> InvalidRequestError:
    """The error of audio sent to a model that cannot hear it, and ``why`` not."""
    return InvalidRequestError(
        f"'{sound.field}' is audio, and the model '{model}' cannot hear audio: {why}",
        param=sound.field,
    )


def not_served(model: str, what: str, why: str) -> InvalidRequestError:
    """The 400 of a model whose engine does not ``what`` (transcribe, speak), and why."""
    return InvalidRequestError(f"the model {model!r} does not {what}: {why}", param="model")
