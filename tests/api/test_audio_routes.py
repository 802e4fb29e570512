"""The audio routes over an engine without speech: refused by name, with and without
``/v1``, after the upload was read as a form (never as JSON)."""

from __future__ import annotations

import io

import pytest

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
