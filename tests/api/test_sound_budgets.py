"""A key with budgets may send audio in a chat: its hold counts a projector's tokens for each
window of audio its header tells, so a clip longer than what is left is refused before any
work; a clip of untold length is refused naming it."""

from __future__ import annotations

import base64

from tests.core.test_audiofile import wav

KEYS = '[[keys]]\nname = "team"\nkey = "sk-team"\ntokens_per_day = {tokens}\n'


def client_of(make_client, tmp_path, tokens: int):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS.format(tokens=tokens))
    return make_client(keys=str(keys))


def heard(raw: bytes) -> dict:
    data = base64.b64encode(raw).decode()
    return {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}},
    ]}]}  # fmt: skip


def asked(client, body: dict):
    return client.post("/v1/chat/completions", json=body,
                       headers={"Authorization": "Bearer sk-team"})  # fmt: skip


def test_a_clip_within_the_budget_is_answered_and_one_past_it_refused(make_client, tmp_path):
    client = client_of(make_client, tmp_path, tokens=1200)
    assert asked(client, heard(wav(1.0))).status_code == 200  # a window: 750 tokens
    refused = asked(client, heard(wav(45.0, rate=8000, width=1)))  # two windows: 1,500
    assert refused.status_code == 429
    assert "a prompt of at most" in refused.json["error"]["message"]


def test_a_clip_of_untold_length_is_refused_naming_it(make_client, tmp_path):
    client = client_of(make_client, tmp_path, tokens=100000)
    body = heard(b"OggS" + bytes(64))
    refused = asked(client, body)
    assert refused.status_code == 400
    assert refused.json["error"]["param"] == "messages[0].content[1].input_audio.data"
