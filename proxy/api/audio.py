"""OpenAI's audio routes, with and without ``/v1``: transcriptions and translations of an
uploaded file, and speech, each to the model it names (see :mod:`proxy.dialects.audio`).

The upload is read within ``--max-audio-size`` before anything else. The engine's answer
goes back as it wrote it: a transcript, whole or as its events stream, its tokens charged to
the key where the engine counted them (estimated from the audio's length and the text's size
where it told none); speech, streamed as it comes. A transcription holds its key's budgets
as its audio's header tells its length, and counts its seconds; speech holds and counts its
characters (what a model's price by the second or by the character reads).
"""

from __future__ import annotations

from typing import Iterator

from flask import Blueprint, Response, request

from proxy.access import holds
from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.requestmodel import request_model
from proxy.api.serve import caller, event_response, hold_budget, versioned
from proxy.api.state import Routes, get_state
from proxy.core.answers import Usage
from proxy.core.audio import Transcription, Upload, estimated
from proxy.core.errors import InvalidRequestError
from proxy.dialects import audio
from proxy.ops.measure import priced

bp = Blueprint("audio", __name__)
routes = Routes(bp, "Speech: transcriptions and translations of audio, and speech of text")


@versioned(bp, "/audio/transcriptions")
def transcribe() -> Response:
    return _transcribed(translating=False)


@versioned(bp, "/audio/translations")
def translate() -> Response:
    return _transcribed(translating=True)


@versioned(bp, "/audio/speech")
def speak() -> Response:
    asked = audio.parse_speech(read_json())
    spoken = len(asked.text)
    hold_budget(lambda: (holds.texts_bound([asked.text], holds.AROUND_REQUEST), 0),
                speech_characters=spoken)  # fmt: skip
    pieces = get_state().router.speak(asked, caller())
    this_call().measure.add_tokens(0, 0, 0, priced=priced(speech_characters=spoken))
    return event_response(pieces, audio.SpeechStream(asked.content_type))


def _transcribed(*, translating: bool) -> Response:
    form = read_json()
    most = get_state().limits.max_audio_size
    asked = audio.parse_transcription(form, _upload(most), most, translating=translating)
    router = get_state().router
    hold_budget(lambda: (holds.transcription_bound(asked), router.longest_answer(request_model())),
                audio_seconds=asked.counted_seconds)  # fmt: skip
    if asked.stream:
        return _streamed(asked)
    transcript = router.transcribe(asked, caller())
    usage = transcript.usage or estimated(asked, len(transcript.content))
    _charge(this_call().measure, usage, asked)
    return Response(transcript.content, content_type=asked.content_type)


def _streamed(asked: Transcription) -> Response:
    """The transcript's events as the engine sends them, the tokens they tell charged once
    the last has come (estimated from the audio and the text, where they tell none)."""
    framing = audio.TranscriptStream()
    measure = this_call().measure  # the stream ends outside the request's context
    events = get_state().router.stream_transcript(asked, caller())

    def pieces() -> Iterator[bytes]:
        yield from events
        _charge(measure, framing.usage or estimated(asked, framing.said), asked)

    return event_response(pieces(), framing)


def _charge(measure, usage: Usage, asked: Transcription) -> None:
    """The transcript's tokens, and its audio's seconds."""
    measure.add_tokens(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens or 0,
                       priced=priced(audio_seconds=asked.counted_seconds))  # fmt: skip


def _upload(most: int):
    """The form's ``file``, read up to one byte past ``most`` (enough to refuse it)."""
    if not isinstance(read_json(), dict):
        raise InvalidRequestError("the body must be a multipart form with the audio as its file")
    sent = request.files.get("file")
    if sent is None:
        return None
    return Upload(sent.filename or "audio", sent.mimetype or "", sent.stream.read(most + 1))
