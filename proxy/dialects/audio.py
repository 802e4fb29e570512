"""OpenAI's audio API, both ways: transcriptions and translations (a multipart form with the
audio ``file``) and speech (a JSON body whose audio answer streams back). Pure.

What the proxy reads it checks before any work, and refuses by name: the audio is a file of a
format the engines read, by its first bytes (never its name alone), within the operator's
size; the answer's format is one the API defines; speech's text is within the API's length.
Every other field goes to the engine as the client wrote it. Its streams, speech's bytes and a
transcript's events, pass as the engine sends them.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import orjson

from proxy.core.answers import Usage
from proxy.core.audio import (
    GRANULARITIES,
    LONGEST_SPEECH,
    SPEECH_FORMATS,
    STREAM_FORMATS,
    TRANSCRIPT_FORMATS,
    Speech,
    Transcription,
    Upload,
    audio_format,
    told_usage,
)
from proxy.core.errors import ProxyError
from proxy.core.fields import Fields
from proxy.core.sse import EVENT_STREAM, encode_event
from proxy.dialects.openai.answer import error_body

LONGEST_USAGE_LINE = 64 * 1024  # bytes of a line a transcript's usage is read from, at most


def parse_transcription(
    form: Mapping[str, Any], audio: Optional[Upload], most_bytes: int, *, translating: bool
) -> Transcription:
    """A transcription's form (``translating``: a translation's, which has no language,
    timestamps or stream), its audio checked before it goes anywhere."""
    fields = Fields(dict(form))
    if audio is None:
        raise fields.fail("file", "is required: the audio to transcribe, as a form's file")
    if len(audio.data) > most_bytes:
        raise fields.fail(
            "file",
            f"is {len(audio.data)} bytes, more than the {most_bytes} accepted (--max-audio-size)",
        )
    kind = audio_format(audio.data)
    if kind is None:
        raise fields.fail(
            "file", "is not audio of a format the engines read (wav, mp3, flac, ogg, webm, mp4)"
        )
    fields.required("model")
    response_format = fields.string("response_format") or "json"
    if response_format not in TRANSCRIPT_FORMATS:
        raise fields.fail("response_format", f"must be one of {', '.join(TRANSCRIPT_FORMATS)}")
    temperature = fields.string("temperature")
    if temperature is not None and not _number_within(temperature, 0, 1):
        raise fields.fail("temperature", "must be a number from 0 to 1")
    stream = _form_boolean(fields, "stream")
    granularities = form.get("timestamp_granularities[]", ())
    granularities = [granularities] if isinstance(granularities, str) else list(granularities)
    if any(each not in GRANULARITIES for each in granularities):
        raise fields.fail("timestamp_granularities[]", "may hold only word and segment")
    if granularities and response_format != "verbose_json":
        raise fields.fail("timestamp_granularities[]", "needs response_format verbose_json")
    if translating:
        for name in ("language", "stream", "timestamp_granularities[]"):
            if form.get(name) is not None:
                raise fields.fail(name, "is not a field of translations")
    if stream and response_format not in ("json", "text"):
        raise fields.fail("stream", "streams only json or text answers")
    return Transcription(
        fields.string("model"),
        "translations" if translating else "transcriptions",
        audio,
        kind,
        {name: value for name, value in form.items() if name != "file"},
        response_format,
        stream,
    )


def parse_speech(body: Any) -> Speech:
    """A speech body; its text within the API's length, its formats the API's."""
    fields = Fields(body)
    fields.required("model")
    text = fields.required("input")
    if len(text) > LONGEST_SPEECH:
        raise fields.fail("input", f"may hold at most {LONGEST_SPEECH} characters")
    voice = fields.raw("voice")
    if not (isinstance(voice, str) and voice) and not (
        isinstance(voice, dict) and isinstance(voice.get("id"), str)
    ):
        raise fields.fail("voice", "is required: a voice's name, or an object with its id")
    response_format = fields.string("response_format") or "mp3"
    if response_format not in SPEECH_FORMATS:
        raise fields.fail("response_format", f"must be one of {', '.join(SPEECH_FORMATS)}")
    fields.number("speed", 0.25, 4.0)
    stream_format = fields.string("stream_format") or "audio"
    if stream_format not in STREAM_FORMATS:
        raise fields.fail("stream_format", "must be audio or sse")
    return Speech(fields.string("model"), text, body, response_format, stream_format)


def _form_boolean(fields: Fields, name: str) -> bool:
    """A form's boolean: ``true`` or ``false`` as text (a JSON body's true and false too)."""
    value = fields.raw(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if value not in ("true", "false"):
        raise fields.fail(name, "must be true or false")
    return value == "true"


def _number_within(text: str, low: float, high: float) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return low <= number <= high


class SpeechStream:
    """Speech's bytes as the engine sends them, of ``mimetype``; an engine that fails midway
    ends the answer there (audio has no room for an error; the log tells it)."""

    encode = staticmethod(encode_event)
    end = b""

    def __init__(self, mimetype: str) -> None:
        self.mimetype = mimetype

    @staticmethod
    def write(piece: bytes) -> list:
        return [piece]

    @staticmethod
    def failure(error: ProxyError) -> list:
        return []

    @staticmethod
    def closing() -> list:
        return []


class TranscriptStream(SpeechStream):
    """A streamed transcript as the engine wrote it (OpenAI's ``transcript.text.delta``
    events, then ``transcript.text.done``), the tokens its events tell (:attr:`usage`) and
    the text its deltas add (:attr:`said`) read on the way; a failure after the first byte
    is an ``error`` event."""

    def __init__(self) -> None:
        super().__init__(EVENT_STREAM)
        self.usage: Optional[Usage] = None
        self.said = 0  # bytes of text its deltas added
        self._rest = b""  # the start of a line still arriving
        self._skipping = False  # within a line too long to be the one that tells the usage

    def write(self, piece: bytes) -> list:
        lines = (self._rest + piece).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if not self._skipping and line.startswith(b"data:"):
                self._read(line[5:])
            self._skipping = False
        if len(self._rest) > LONGEST_USAGE_LINE:
            self._rest, self._skipping = b"", True
        return [piece]

    def _read(self, data: bytes) -> None:
        """The tokens an event tells, and the text a delta adds."""
        if b'"usage"' in data:
            self.usage = told_usage(data) or self.usage
        elif b'"delta"' in data:
            try:
                delta = orjson.loads(data).get("delta")
            except (orjson.JSONDecodeError, AttributeError):
                return
            if isinstance(delta, str):
                self.said += len(delta.encode("utf-8", "surrogatepass"))

    @staticmethod
    def failure(error: ProxyError) -> list:
        return [error_body(error)]
