"""OpenAI's audio requests as the proxy reads them: the audio known by its first bytes, and
every field the proxy reads checked and refused by name before anything is sent."""

from __future__ import annotations

import pytest

from proxy.core.audio import Upload
from proxy.core.errors import InvalidRequestError
from proxy.dialects import audio

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "


def transcription(form: dict, data: bytes = WAV, translating: bool = False, most: int = 100):
    upload = Upload("a.wav", "audio/wav", data) if data is not None else None
    return audio.parse_transcription(
        {"model": "whisper", **form}, upload, most, translating=translating
    )


def test_a_transcriptions_fields_go_on_as_they_came():
    form = {"language": "en", "timestamp_granularities[]": ["word", "segment"]}
    asked = transcription({**form, "response_format": "verbose_json"})
    assert asked.fields == {"model": "whisper", "response_format": "verbose_json", **form}
    assert asked.task == "transcriptions" and asked.content_type == "application/json"
    assert asked.audio_format == "wav"
    assert transcription({"response_format": "srt"}).content_type.startswith("text/plain")


@pytest.mark.parametrize(
    "form, data, translating, param",
    [
        ({}, None, False, "file"),
        ({}, WAV + b"x" * 100, False, "file"),
        ({}, b"hello", False, "file"),
        ({"model": ""}, WAV, False, "model"),
        ({"response_format": "mp3"}, WAV, False, "response_format"),
        ({"temperature": "warm"}, WAV, False, "temperature"),
        ({"temperature": "1.5"}, WAV, False, "temperature"),
        ({"stream": "yes"}, WAV, False, "stream"),
        ({"stream": "true", "response_format": "srt"}, WAV, False, "stream"),
        ({"timestamp_granularities[]": "line"}, WAV, False, "timestamp_granularities[]"),
        ({"timestamp_granularities[]": "word"}, WAV, False, "timestamp_granularities[]"),
        ({"language": "fr"}, WAV, True, "language"),
    ],
    ids=[
        "no-file",
        "too-large",
        "not-audio",
        "no-model",
        "unknown-format",
        "temperature-not-a-number",
        "temperature-too-high",
        "stream-not-a-boolean",
        "stream-of-subtitles",
        "unknown-granularity",
        "granularity-without-verbose-json",
        "language-of-a-translation",
    ],
)
def test_a_transcription_not_served_is_refused_by_name(form, data, translating, param):
    with pytest.raises(InvalidRequestError) as refused:
        transcription(form, data, translating)
    assert refused.value.param == param


SPEECH = {"model": "tts", "input": "Hello.", "voice": "alloy"}


def test_speech_is_read_with_its_formats():
    asked = audio.parse_speech({**SPEECH, "response_format": "wav", "speed": 1.5})
    assert (asked.text, asked.content_type) == ("Hello.", "audio/wav")
    assert audio.parse_speech({**SPEECH, "stream_format": "sse"}).content_type == (
        "text/event-stream"
    )
    assert audio.parse_speech({**SPEECH, "voice": {"id": "voice_123"}}).text == "Hello."


@pytest.mark.parametrize(
    "body, param",
    [
        ({**SPEECH, "input": ""}, "input"),
        ({**SPEECH, "input": "a" * 4097}, "input"),
        ({**SPEECH, "voice": None}, "voice"),
        ({**SPEECH, "voice": {"name": "x"}}, "voice"),
        ({**SPEECH, "response_format": "ogg"}, "response_format"),
        ({**SPEECH, "speed": 5}, "speed"),
        ({**SPEECH, "stream_format": "chunks"}, "stream_format"),
        ({**SPEECH, "model": None}, "model"),
    ],
    ids=["empty", "too-long", "no-voice", "voice-without-id", "format", "speed", "stream", "model"],
)
def test_speech_not_served_is_refused_by_name(body, param):
    with pytest.raises(InvalidRequestError) as refused:
        audio.parse_speech(body)
    assert refused.value.param == param


DELTA = b'data: {"type":"transcript.text.delta","delta":"I hear"}\n\n'
DONE = (b'data: {"type":"transcript.text.done","text":"I hear","usage":{"type":"tokens",'
        b'"input_tokens":812,"output_tokens":5,"total_tokens":817}}\n\n')  # fmt: skip


@pytest.mark.parametrize("cut", [1, 20, len(DELTA) + 30, len(DELTA) + len(DONE) - 3])
def test_a_streamed_transcript_passes_as_written_its_usage_read_wherever_it_is_cut(cut):
    stream = audio.TranscriptStream()
    whole = DELTA + DONE
    written = stream.write(whole[:cut]) + stream.write(whole[cut:]) + stream.closing()
    assert b"".join(written) == whole
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (812, 5)
    assert stream.said == len("I hear")


def test_a_line_too_long_to_tell_the_usage_is_not_kept_whole():
    stream = audio.TranscriptStream()
    stream.write(b'data: {"usage": ' + b" " * (audio.LONGEST_USAGE_LINE + 1))
    stream.write(b'{"type":"tokens","input_tokens":1,"output_tokens":1}}\n\n')
    assert stream.usage is None
    stream.write(DONE)
    assert stream.usage.prompt_tokens == 812
