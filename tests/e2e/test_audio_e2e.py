"""Transcriptions on llama-server itself, through the proxy, with the real ``openai`` SDK: a
tiny model that hears (:mod:`.audiomodel`) on current llama-server transcribes a WAV as the
server's own route does, whole or streamed, its counted tokens charged to the key; a plain
text transcript is made from the server's JSON. What the server cannot give is refused by
name before anything is sent: timestamps, translations, a model without an audio projector,
an old generation with no such route. A chat's audio is heard as the server's own chat hears
it, and refused by name by a model without audio, whatever its generation."""

from __future__ import annotations

import base64
import json

import openai
import pytest
import requests

from tests.processes import ProxyProcess

from .audiomodel import AUDIO_ANSWER, TEXT_ANSWER, wav, write_audio_model
from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

MODELS = """
[models.ears]
upstreams = ["{ears}"]
[models.plain]
upstreams = ["{plain}"]
[models.old]
upstreams = ["{old}"]
"""
ADMIN = {"Authorization": "Bearer admin-key"}


@pytest.fixture(scope="module")
def served(tmp_path_factory, model, logs):
    """``(the audio model's server, proxy)``: beside it, the plain tiny model on a current
    server and on PowerInfer's."""
    folder = tmp_path_factory.mktemp("ears")
    audio_model, projector = write_audio_model(folder)
    with (
        LlamaServer(
            audio_model, logs / "ears.log", ctx_size=2048, extra_args=["--mmproj", str(projector)]
        ) as ears,
        LlamaServer(model, logs / "ears-plain.log") as plain,
        LlamaServer(model, logs / "ears-old.log", kind="powerinfer", parallel=1) as old,
    ):
        models = folder / "models.toml"
        models.write_text(MODELS.format(ears=ears.url, plain=plain.url, old=old.url))
        args = ("--config", str(models), "--admin-key", "admin-key")
        with ProxyProcess(ears.url, logs / "proxy-ears.log", args=args) as proxy:
            yield ears, proxy


def own(server: LlamaServer, clip: bytes, **fields) -> dict:
    """What the server's own route answers ``clip`` with ``fields``."""
    reply = requests.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", clip)},
        data=fields,
        timeout=60,
    )
    reply.raise_for_status()
    return reply.json()


def charged(proxy) -> tuple:
    rows = requests.get(proxy.url + "/admin/usage", headers=ADMIN, timeout=10).json()["usage"]
    row = next((row for row in rows if row["model"] == "ears"), {})
    return row.get("prompt_tokens", 0), row.get("completion_tokens", 0)


def test_a_transcription_is_the_servers_own_and_its_tokens_are_charged(served):
    server, proxy = served
    clip = wav(1.0)
    direct = own(server, clip, language="en")
    before = charged(proxy)
    answer = proxy.sdk().audio.transcriptions.create(
        model="ears", file=("meeting.wav", clip, "audio/wav"), language="en"
    )
    assert answer.text == direct["text"] == AUDIO_ANSWER
    prompt, output = charged(proxy)
    assert (prompt - before[0], output - before[1]) == (
        direct["usage"]["input_tokens"],
        direct["usage"]["output_tokens"],
    )


def test_a_streamed_transcript_is_the_servers_own_events_and_its_tokens_are_charged(served):
    server, proxy = served
    clip = wav(1.0)
    direct = requests.post(server.url + "/v1/audio/transcriptions", data={"stream": "true"},
                           files={"file": ("a.wav", clip)}, timeout=60).content  # fmt: skip
    own_events = [json.loads(line[6:]) for line in direct.split(b"\n\n") if line[6:7] == b"{"]
    before = charged(proxy)
    through = requests.post(proxy.url + "/v1/audio/transcriptions",
                            data={"model": "ears", "stream": "true"},
                            files={"file": ("a.wav", clip)}, timeout=60)  # fmt: skip
    assert through.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in through.content.split(b"\n\n")
              if line[6:7] == b"{"]  # fmt: skip
    assert through.content.endswith(b"data: [DONE]\n\n")
    for event in (*events, *own_events):  # the cache's share differs the second time
        event.get("usage", {}).pop("input_tokens_details", None)
    assert events == own_events and events[-1]["text"] == AUDIO_ANSWER
    prompt, output = charged(proxy)
    usage = events[-1]["usage"]
    assert (prompt - before[0], output - before[1]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )


def test_a_plain_text_transcript_is_made_from_the_servers_json(served):
    _, proxy = served
    text = proxy.sdk().audio.transcriptions.create(
        model="ears", file=("a.wav", wav(0.5, 880.0), "audio/wav"), response_format="text"
    )
    assert text == AUDIO_ANSWER


@pytest.mark.parametrize(
    "name, call, param, words",
    [
        ("ears", "srt", "response_format", "timestamps"),
        ("ears", "translation", "model", "has no translations"),
        ("plain", "json", "model", "without an audio projector"),
        ("old", "json", "model", "powerinfer server"),
    ],
    ids=["timestamps", "translation", "no-projector", "old-generation"],
)
def test_what_the_server_cannot_give_is_refused_by_name(served, name, call, param, words):
    _, proxy = served
    audio = proxy.sdk().audio
    clip = ("a.wav", wav(0.5), "audio/wav")
    with pytest.raises(openai.BadRequestError) as refused:
        if call == "translation":
            audio.translations.create(model=name, file=clip)
        else:
            audio.transcriptions.create(model=name, file=clip, response_format=call)
    assert refused.value.body["param"] == param and words in refused.value.body["message"]


def chat(clip: bytes = b"") -> list:
    content = [{"type": "text", "text": "What is this?"}]
    if clip:
        data = base64.b64encode(clip).decode()
        content.append({"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})
    return [{"role": "user", "content": content}]


def test_a_chats_audio_is_heard_as_the_servers_own_chat_hears_it(served):
    server, proxy = served
    clip = wav(1.0)
    body = {"messages": chat(clip), "temperature": 0, "max_tokens": 16}
    direct = requests.post(server.url + "/v1/chat/completions", json=body, timeout=60).json()
    heard = proxy.sdk().chat.completions.create(model="ears", **body)
    unheard = proxy.sdk().chat.completions.create(model="ears", **{**body, "messages": chat()})
    assert heard.choices[0].message.content == direct["choices"][0]["message"]["content"]
    assert (heard.choices[0].message.content, unheard.choices[0].message.content) == (
        AUDIO_ANSWER,
        TEXT_ANSWER,
    )
    assert heard.usage.prompt_tokens == direct["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    "name, words",
    [("plain", "without an audio projector"), ("old", "without an audio projector")],
    ids=["no-projector", "old-generation"],
)
def test_a_chats_audio_to_a_model_without_ears_is_refused_by_name(served, name, words):
    _, proxy = served
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.sdk().chat.completions.create(model=name, messages=chat(wav(0.5)))
    assert refused.value.body["param"] == "messages[0].content[1].input_audio.data"
    assert "cannot hear audio" in refused.value.body["message"]
    assert words in refused.value.body["message"]
