"""The audio routes over an engine without speech: refused by name, with and without
``/v1``, after the upload was read as a form (never as JSON). Speech streams as any stream
does: the drain waits for it, and an engine that breaks off ends it there."""

from __future__ import annotations

import io

import pytest

from proxy.core.caller import NOBODY
from proxy.core.errors import UpstreamError
from tests.fakes.backend import FakeBackend

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/audio/translations"])
def test_a_transcription_on_an_engine_without_speech_is_refused_by_name(client, path):
    form = {"model": "tiny", "file": (io.BytesIO(WAV), "a.wav", "audio/wav")}
    answer = client.post(path, data=form, content_type="multipart/form-data")
    assert answer.status_code == 400
    assert answer.json["error"]["param"] == "model"
    assert "does not transcribe" in answer.json["error"]["message"]


def test_speech_on_an_engine_without_it_is_refused_by_name(client):
    answer = client.post("/v1/audio/speech", json={"model": "tiny", "input": "hi", "voice": "a"})
    assert answer.status_code == 400 and "does not speak" in answer.json["error"]["message"]


def test_a_form_too_large_is_refused_before_it_is_read(make_client):
    client = make_client(max_body_size=1024)
    form = {"model": "tiny", "file": (io.BytesIO(WAV + bytes(4096)), "a.wav", "audio/wav")}
    answer = client.post("/v1/audio/transcriptions", data=form, content_type="multipart/form-data")
    assert answer.status_code == 413


class Speaker(FakeBackend):
    """Speaks two pieces, and fails after them when ``broken``."""

    def __init__(self, broken: bool = False) -> None:
        super().__init__()
        self.broken = broken

    def speak(self, asked, caller=NOBODY):
        yield b"ID3-first"
        yield b"-second"
        if self.broken:
            raise UpstreamError("the engine broke off")


SAID = {"model": "tiny", "input": "hi", "voice": "a"}


def test_speech_is_a_stream_the_drain_waits_for(make_client):
    client = make_client(fake=Speaker())
    drain = client.application.extensions["proxy"].drain
    answer = client.post("/v1/audio/speech", json=SAID, buffered=False)
    assert answer.content_type == "audio/mpeg"
    assert not drain.wait_closed(0)  # open while its client reads it
    assert answer.get_data() == b"ID3-first-second"
    answer.close()
    assert drain.wait_closed(0)


def test_speech_an_engine_breaks_off_ends_where_it_broke(make_client):
    answer = make_client(fake=Speaker(broken=True)).post("/v1/audio/speech", json=SAID)
    assert answer.status_code == 200 and answer.get_data() == b"ID3-first-second"
