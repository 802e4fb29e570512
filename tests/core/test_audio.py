"""Audio as the proxy reads it wherever it comes: known by its first bytes, and a chat's
audio part checked within its bounds, a bad one refused naming its field."""

from __future__ import annotations

import base64

import pytest

from proxy.core import audio
from proxy.core.errors import InvalidRequestError
from proxy.core.types import Sound

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "


@pytest.mark.parametrize(
    "head, kind",
    [
        (WAV, "wav"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS\x00\x02", "ogg"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81", "webm"),
        (b"\x00\x00\x00\x20ftypM4A ", "mp4"),
        (b"ID3\x04\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mp3"),
        (b"RIFF\x24\x00\x00\x00AVI ", None),
        (b"\x89PNG\r\n\x1a\n", None),
        (b"", None),
    ],
)
def test_audio_is_known_by_its_first_bytes(head, kind):
    assert audio.audio_format(head) == kind


def test_a_sound_is_its_base64_and_the_format_its_bytes_say():
    data = base64.b64encode(WAV).decode()
    assert audio.sound_of(data, "f", 100, at=3) == Sound("f", 3, "wav", data)


@pytest.mark.parametrize(
    "data, says",
    [
        (base64.b64encode(WAV + bytes(100)).decode(), "more than 100 bytes"),
        ("UklGR!!!", "not base64"),
        ("UklGRg", "not base64"),
        (base64.b64encode(b"\x89PNG\r\n\x1a\n").decode(), "not audio"),
    ],
    ids=["too-large", "not-base64", "cut-short", "an-image"],
)
def test_a_bad_sound_is_refused_naming_its_field(data, says):
    with pytest.raises(InvalidRequestError) as caught:
        audio.sound_of(data, "messages[0].content[1].input_audio.data", 100)
    assert caught.value.param == "messages[0].content[1].input_audio.data"
    assert says in caught.value.message
