"""Audio in a chat reaches the core in its place among the message's text and images; a bad
``input_audio`` part is a 400 naming its field."""

from __future__ import annotations

import base64

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.core.types import Sound
from proxy.dialects.dialect import Limits
from proxy.dialects.openai import chat
from tests.images import data_uri, picture

WAV = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(16)).decode()
LIMITS = Limits(max_image_size=1 << 20, max_audio_size=1 << 10)


def said(*parts) -> dict:
    return {"messages": [{"role": "user", "content": list(parts)}]}


def heard(data: str = WAV, format: str = "wav") -> dict:
    return {"type": "input_audio", "input_audio": {"data": data, "format": format}}


def test_a_sound_reaches_the_core_in_its_place_beside_an_image():
    image = {"type": "image_url", "image_url": {"url": data_uri(picture())}}
    body = said({"type": "text", "text": "what is"}, heard(), image, {"type": "text", "text": "?"})
    (message,) = chat.parse(body, LIMITS).request.messages
    assert message.content == "what is\n?"
    assert message.sounds == (Sound("messages[0].content[1].input_audio.data", 7, "wav", WAV),)
    assert [(image.at, image.order) for image in message.images] == [(7, 1)]


def test_the_format_is_the_one_the_bytes_say():
    (message,) = chat.parse(said(heard(format="mp3")), LIMITS).request.messages
    assert message.sounds[0].audio_format == "wav"


@pytest.mark.parametrize(
    "part, field, says",
    [
        ({"type": "input_audio"}, "input_audio", "is required"),
        ({"type": "input_audio", "input_audio": {"format": "wav"}}, "input_audio.data",
         "is required"),
        ({"type": "input_audio", "input_audio": {"data": WAV}}, "input_audio.format",
         "is required"),
        (heard(data="not base64!"), "input_audio.data", "not base64"),
        (heard(data=base64.b64encode(b"%PDF-1.7").decode()), "input_audio.data", "not audio"),
        (heard(data=base64.b64encode(bytes(2048)).decode()), "input_audio.data",
         "--max-audio-size"),
        ({"type": "audio_url", "audio_url": "x"}, "type", "input_audio parts are"),
    ],
    ids=["no-part", "no-data", "no-format", "not-base64", "not-audio", "too-large", "unknown"],
)  # fmt: skip
def test_a_bad_sound_is_named(part, field, says):
    with pytest.raises(InvalidRequestError) as caught:
        chat.parse(said(part), LIMITS)
    assert caught.value.param == f"messages[0].content[0].{field}"
    assert says in caught.value.message
