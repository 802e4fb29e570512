"""A transcription on llama-server's own ``/v1/audio/transcriptions``, for a model whose
server has an audio projector, and which audio in a chat the server hears. Pure.

The server answers JSON only, with the tokens it counted; a plain-text transcript is made
from it. What it cannot give is refused by name before anything is sent: translations,
timestamps (``verbose_json``, ``srt``, ``vtt``), audio it does not decode (it reads WAV, MP3
and FLAC), and any transcription on an older server or a model without audio.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

from proxy.backends.servercpp.kinds import ServerKind
from proxy.backends.wire import form
from proxy.core.answers import ModelCard
from proxy.core.audio import Transcript, Transcription, not_served, told_usage, unheard
from proxy.core.errors import InvalidRequestError, ProxyError, UpstreamError
from proxy.core.types import Sound

PATH = "/v1/audio/transcriptions"
DECODED = ("wav", "mp3", "flac")  # what the server reads without ffmpeg beside it
ANSWERED = ("json", "text")  # json as it gives it; text made from it


def refusal(
    asked: Transcription, kind: ServerKind, card: ModelCard, model: str
) -> Optional[ProxyError]:
    """Why the server cannot transcribe ``asked``, or ``None``."""
    if kind.legacy:
        return not_served(
            model,
            "transcribe audio",
            f"it is on a {kind.name} server, which has no /v1/audio/transcriptions "
            "(llama-server has, for a model with an audio projector)",
        )
    if "audio" not in card.capabilities:
        return not_served(
            model,
            "transcribe audio",
            "its server was started without an audio projector (--mmproj)",
        )
    if asked.task != "transcriptions":
        return not_served(
            model, "translate audio", "llama-server transcribes, and has no translations"
        )
    if asked.response_format not in ANSWERED:
        return InvalidRequestError(
            f"response_format {asked.response_format} cannot be served: llama-server gives json "
            "(and text, made from it), without the timestamps the others need",
            param="response_format",
        )
    if asked.audio_format not in DECODED:
        return InvalidRequestError(
            f"the file is {asked.audio_format} audio, which llama-server does not decode; "
            "it reads WAV, MP3 and FLAC",
            param="file",
        )
    return None


def sound_refusal(sounds: Sequence[Sound], card: ModelCard, model: str) -> Optional[ProxyError]:
    """Why the model cannot hear the first of a chat's ``sounds`` it cannot, or ``None``:
    its server has no audio projector (the older generations have none), or the audio is of
    a format the server does not decode."""
    for sound in sounds:
        if "audio" not in card.capabilities:
            return unheard(
                sound, model, "its server was started without an audio projector (--mmproj)"
            )
        if sound.audio_format not in DECODED:
            return InvalidRequestError(
                f"'{sound.field}' is {sound.audio_format} audio, which llama-server does not "
                "decode; it reads WAV, MP3 and FLAC",
                param=sound.field,
            )
    return None


def body(asked: Transcription) -> tuple:
    """``(content type, body)``: the form as the client wrote it, its answer asked as JSON."""
    audio = asked.audio
    fields = {**asked.fields, "response_format": "json"}
    return form.encoded({**fields, "file": (audio.filename, audio.content_type, audio.data)})


def transcript(answer: bytes, response_format: str, upstream: str) -> Transcript:
    """The server's JSON answer as the client asked it, and the tokens it counted."""
    usage = told_usage(answer)
    if response_format == "json":
        return Transcript(answer, usage)
    try:
        text = json.loads(answer)["text"]
    except (ValueError, KeyError, TypeError):
        text = None
    if not isinstance(text, str):
        raise UpstreamError(f"{upstream} answered a transcription without its text")
    return Transcript(text.encode("utf-8"), usage)
