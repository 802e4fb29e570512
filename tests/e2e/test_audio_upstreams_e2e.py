"""Speech through the proxy to an OpenAI-compatible engine (the tests' echo engine, which
keeps what it is sent), with the real ``openai`` SDK: a transcription's and a translation's
form reach the engine as the client wrote it (its file byte for byte) under the engine's
model name, the transcript comes back as the engine wrote it and its counted tokens are
charged to the key; speech streams as the engine sends it, its first bytes at the client
before the engine has written the rest. A key may use only the models it is granted, read
from the form itself; what is not audio is refused before anything is sent; a key with
budgets is charged a transcript (as told, or estimated where the engine tells none) and its
seconds, and speech by the character. A chat's audio reaches the engine byte for byte."""

from __future__ import annotations

import base64
import hashlib
import io
import wave

import openai
import pytest

from .echoed import charged, echoed, emptied

pytestmark = [pytest.mark.e2e]

MODELS = """
[models.voice]
backend = "openai"
upstreams = ["{echo}/v1"]
upstream_model = "echo-voice"
price = {{ speech_character = 0.001, audio_second = 0.01 }}
[models.other]
backend = "openai"
upstreams = ["{echo}/v1"]
"""


def clip(frames: int = 1600) -> bytes:
    """A tenth of a second of 16 kHz mono WAV."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(bytes(range(256)) * (frames * 2 // 256))
    return out.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory, logs):
    """``(echo engine, proxy)``."""
    folder = tmp_path_factory.mktemp("audio")
    with echoed(folder, logs, "audio", MODELS, "voice", ()) as pair:
        yield pair


@pytest.fixture
def echo(served):
    return emptied(served)


def sdk(proxy, key: str = "sk-alice") -> openai.OpenAI:
    return proxy.sdk(key)


def test_a_transcription_reaches_the_engine_as_written_and_its_tokens_are_charged(served, echo):
    _, proxy = served
    audio = clip()
    before = charged(proxy, "alice", "voice").get("prompt_tokens", 0)
    answer = sdk(proxy).audio.transcriptions.create(
        model="voice",
        file=("meeting.wav", audio, "audio/wav"),
        language="en",
        prompt="Names: Ada, Grace.",
        temperature=0.2,
    )
    digest = hashlib.sha256(audio).hexdigest()
    assert answer.text == f"heard {digest[:16]} of {len(audio)} bytes"
    (sent,) = echo.received()
    assert sent["path"] == "/v1/audio/transcriptions"
    assert sent["file"] == {
        "filename": "meeting.wav",
        "type": "audio/wav",
        "size": len(audio),
        "sha256": digest,
    }
    assert sent["fields"]["model"] == ["echo-voice"]
    assert (sent["fields"]["language"], sent["fields"]["prompt"]) == (
        ["en"],
        ["Names: Ada, Grace."],
    )
    assert sent["fields"]["temperature"] == ["0.2"]
    after = charged(proxy, "alice", "voice")["prompt_tokens"]
    assert after - before == len(audio) // 100


def test_a_streamed_transcript_passes_as_the_engine_sends_it_its_tokens_charged(served, echo):
    _, proxy = served
    audio = clip()
    before = charged(proxy, "alice", "voice").get("prompt_tokens", 0)
    events = list(sdk(proxy).audio.transcriptions.create(
        model="voice", file=("meeting.wav", audio, "audio/wav"), stream=True
    ))  # fmt: skip
    digest = hashlib.sha256(audio).hexdigest()
    said = f"heard {digest[:16]} of {len(audio)} bytes"
    assert [event.type for event in events] == ["transcript.text.delta"] * 5 + [
        "transcript.text.done"
    ]
    assert "".join(event.delta for event in events[:-1]) == said + " "
    assert events[-1].text == said
    (sent,) = echo.received()
    assert sent["fields"]["stream"] == ["true"]
    after = charged(proxy, "alice", "voice")["prompt_tokens"]
    assert after - before == len(audio) // 100


def test_a_translation_goes_to_the_engines_translations(served, echo):
    _, proxy = served
    answer = sdk(proxy).audio.translations.create(
        model="voice", file=("talk.wav", clip(), "audio/wav"), response_format="text"
    )
    assert answer.startswith("heard ")
    assert [sent["path"] for sent in echo.received()] == ["/v1/audio/translations"]


def test_speech_streams_as_the_engine_sends_it(served, echo):
    _, proxy = served
    piece = hashlib.sha256(b"Hello, team.").digest() * 128
    with sdk(proxy).audio.speech.with_streaming_response.create(
        model="voice", voice="alloy", input="Hello, team.", response_format="mp3"
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        pieces = response.iter_bytes(len(piece))
        first = next(pieces)  # the engine holds the rest back until released
        echo.release()
        rest = b"".join(pieces)
    assert first + rest == piece * 4
    (sent,) = echo.received()
    assert sent["body"] == {
        "model": "echo-voice",
        "voice": "alloy",
        "input": "Hello, team.",
        "response_format": "mp3",
    }


def test_a_key_may_use_only_its_models_read_from_the_form(served, echo):
    _, proxy = served
    with pytest.raises(openai.APIStatusError) as refused:
        sdk(proxy, "sk-bob").audio.transcriptions.create(
            model="voice", file=("a.wav", clip(), "audio/wav")
        )
    assert refused.value.status_code in (403, 404)
    assert echo.received() == []


@pytest.mark.parametrize(
    "file, param", [(("notes.wav", b"not audio at all", "audio/wav"), "file")], ids=["not-audio"]
)
def test_what_is_not_audio_is_refused_before_anything_is_sent(served, echo, file, param):
    _, proxy = served
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(proxy).audio.transcriptions.create(model="voice", file=file)
    assert refused.value.body["param"] == param
    assert echo.received() == []


@pytest.mark.parametrize("response_format", ["json", "text"], ids=["told", "untold"])
def test_a_key_with_budgets_is_charged_a_transcript_told_or_estimated(served, echo,
                                                                      response_format):  # fmt: skip
    _, proxy = served
    audio = clip()  # a tenth of a second: one window
    before = charged(proxy, "carol", "voice")
    sdk(proxy, "sk-carol").audio.transcriptions.create(
        model="voice", file=("a.wav", audio, "audio/wav"), response_format=response_format
    )
    after = charged(proxy, "carol", "voice")
    prompt = after["prompt_tokens"] - before.get("prompt_tokens", 0)
    output = after["completion_tokens"] - before.get("completion_tokens", 0)
    said = len(f"heard {'0' * 16} of {len(audio)} bytes")
    # told: the engine's counts; untold: the audio's window, and the text at four bytes a token
    assert (prompt, output) == ((len(audio) // 100, 6) if response_format == "json" else
                                (750, -(-said // 4)))  # fmt: skip


def test_a_key_with_budgets_is_held_and_charged_speech_by_the_character(served, echo):
    _, proxy = served
    said = sdk(proxy, "sk-dave").audio.speech.create(model="voice", voice="alloy", input="hello")
    assert said.content
    row = charged(proxy, "dave", "voice")
    assert (row["speech_characters"], row["spend_usd"]) == (5, 0.005)
    with pytest.raises(openai.RateLimitError) as refused:  # 0.046 dollars: more than is left
        sdk(proxy, "sk-dave").audio.speech.create(model="voice", voice="alloy", input="x" * 46)
    assert "46 characters read aloud" in refused.value.body["message"]
    assert len(echo.received()) == 1


def test_a_transcription_counts_its_seconds_of_audio(served, echo):
    _, proxy = served
    before = charged(proxy, "alice", "voice")
    sdk(proxy).audio.transcriptions.create(model="voice", file=("a.wav", clip(), "audio/wav"))
    after = charged(proxy, "alice", "voice")
    assert after["audio_seconds"] - before.get("audio_seconds", 0) == 1  # a tenth: one begun


def test_a_chats_audio_reaches_the_engine_byte_for_byte(served, echo):
    _, proxy = served
    audio = base64.b64encode(clip()).decode()
    sdk(proxy).chat.completions.create(model="voice", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
    ]}])  # fmt: skip
    (sent,) = echo.received()
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
    ]
