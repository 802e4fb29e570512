"""What llama-server's own transcription route is asked, and what is refused before it is:
a table of the server, the model's card and the request."""

from __future__ import annotations

import json

import pytest

from proxy.backends.servercpp import hearing
from proxy.backends.servercpp.kinds import LLAMACPP, POWERINFER
from proxy.core.answers import ModelCard
from proxy.core.audio import Transcription, Upload
from proxy.core.errors import UpstreamError
from proxy.core.types import Sound, amended

HEARS = ModelCard(capabilities=("completion", "tools", "audio"))
DEAF = ModelCard(capabilities=("completion", "tools"))
WAV = Upload("a.wav", "audio/wav", b"RIFF\x00\x00\x00\x00WAVE")


def asked(task="transcriptions", response_format="json", audio_format="wav", **fields):
    form = {"model": "ears", "response_format": response_format, **fields}
    return Transcription("ears", task, WAV, audio_format, form, response_format)


@pytest.mark.parametrize(
    "request_, kind, card, param, words",
    [
        (asked(), LLAMACPP, HEARS, None, None),
        (asked(response_format="text"), LLAMACPP, HEARS, None, None),
        (asked(audio_format="mp3"), LLAMACPP, HEARS, None, None),
        (asked(), POWERINFER, HEARS, "model", "powerinfer server"),
        (asked(), LLAMACPP, DEAF, "model", "without an audio projector"),
        (asked(task="translations"), LLAMACPP, HEARS, "model", "no translations"),
        (asked(response_format="vtt"), LLAMACPP, HEARS, "response_format", "timestamps"),
        (asked(audio_format="ogg"), LLAMACPP, HEARS, "file", "WAV, MP3 and FLAC"),
    ],
    ids=["json", "text", "mp3", "old-server", "no-projector", "translation", "vtt", "ogg"],
)
def test_what_the_server_cannot_give_is_refused_by_name(request_, kind, card, param, words):
    problem = hearing.refusal(request_, kind, card, "ears")
    if param is None:
        assert problem is None
    else:
        assert problem.param == param and words in problem.message


def test_the_form_goes_as_written_its_answer_asked_as_json():
    content_type, body = hearing.body(asked(response_format="text", language="en"))
    assert content_type.startswith("multipart/form-data; boundary=")
    assert b'name="language"\r\n\r\nen' in body
    assert b'name="response_format"\r\n\r\njson' in body and b"\r\n\r\ntext" not in body
    assert b'filename="a.wav"' in body and WAV.data in body


ANSWER = {
    "text": "I hear a sound.",
    "usage": {
        "type": "tokens",
        "input_tokens": 812,
        "output_tokens": 4,
        "input_tokens_details": {"cached_tokens": 800},
    },
}


def test_the_servers_json_as_asked_and_its_counted_tokens():
    raw = json.dumps(ANSWER).encode()
    whole = hearing.transcript(raw, "json", "the server")
    assert whole.content == raw
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (812, 4)
    assert whole.usage.cached_tokens == 800
    text = hearing.transcript(raw, "text", "the server")
    assert (text.content, text.usage) == (b"I hear a sound.", whole.usage)
    with pytest.raises(UpstreamError):
        hearing.transcript(b'{"words": []}', "text", "the server")


def test_an_answer_without_counted_tokens_charges_none():
    assert hearing.transcript(b'{"text": "hi"}', "json", "s").usage is None


HEARD = Sound("messages[0].content[0].input_audio.data", 0, "wav", "UklGRg==")


@pytest.mark.parametrize(
    "sounds, card, words",
    [
        ((HEARD,), HEARS, None),
        ((), DEAF, None),
        ((HEARD,), DEAF, "cannot hear audio: its server was started without an audio projector"),
        ((HEARD, amended(HEARD, audio_format="ogg", field="f")), HEARS, "ogg audio"),
    ],
    ids=["heard", "no-sound", "no-projector", "ogg"],
)
def test_a_chats_audio_the_server_cannot_hear_is_refused_by_name(sounds, card, words):
    problem = hearing.sound_refusal(sounds, card, "ears")
    if words is None:
        assert problem is None
    else:
        assert problem.param == sounds[-1].field and words in problem.message
