"""The inspector's exchanges through the app: kept only when asked (for every request, or a
key's), the request as sent and the answer as got, whole and streamed, and never a secret;
read back behind the admin key."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import pytest

from proxy.core.audio import Transcript
from proxy.inspector.capture import MAX_PART
from tests.core.test_audiofile import wav
from tests.fakes.backend import FakeBackend

ADMIN = {"Authorization": "Bearer admin-secret"}
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
IMAGE = base64.b64encode(b"\x89PNG" + bytes(2000)).decode()


def keys_file(tmp_path) -> str:
    path = tmp_path / "keys.toml"
    path.write_text(
        '[[keys]]\nname = "alice"\nkey = "sk-alice-secret"\ncapture = true\n\n'
        '[[keys]]\nname = "bob"\nkey = "sk-bob-secret"\n'
    )
    return str(path)


def ask(client, path: str, body, **options):
    """A request, its answer read and closed: the exchange ends as a client's would."""
    with client.post(path, json=body, **options) as response:
        response.get_data()
        return response


def listed(client, query: str = "") -> dict:
    response = client.get("/admin/exchanges" + query, headers=ADMIN)
    assert response.status_code == 200
    return response.json


def test_nothing_is_kept_unless_asked(make_client, tmp_path):
    client = make_client(admin_key="admin-secret")
    assert ask(client, "/v1/chat/completions", CHAT).status_code == 200
    assert listed(client)["exchanges"] == [] and listed(client)["kept"] == 0


def test_a_request_for_no_route_is_not_an_exchange(make_client):
    client = make_client(admin_key="admin-secret", capture="on")
    assert client.get("/favicon.ico").status_code == 404
    assert listed(client)["exchanges"] == []


def test_an_exchange_is_the_request_as_sent_and_the_answer_as_got(make_client):
    client = make_client(admin_key="admin-secret", capture="on")
    whole = ask(client, "/v1/chat/completions", CHAT).json
    streamed = ask(client, "/v1/chat/completions", {**CHAT, "stream": True}).data
    briefs = listed(client)["exchanges"]
    assert [(brief["api"], brief["status"]) for brief in briefs] == [("openai", 200)] * 2
    later, first = (client.get(f"/admin/exchanges/{b['id']}", headers=ADMIN).json for b in briefs)
    assert first["request"] == CHAT and first["answer"] == whole and not first["streamed"]
    assert later["streamed"] and later["answer"] == streamed.decode()
    assert later["path"] == "/v1/chat/completions" and later["model"] == "default"  # as counted
    assert first["completion_tokens"] == 2 and first["seconds"] > 0


def test_only_the_keys_that_ask_are_kept_and_no_secret_is(make_client, tmp_path):
    client = make_client(admin_key="admin-secret", keys=keys_file(tmp_path))
    picture = {"role": "user", "content": [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
    ]}  # fmt: skip
    for secret in ("sk-alice-secret", "sk-bob-secret"):
        # a model that cannot see refuses the image: the refusal is kept too
        answered = ask(
            client,
            "/v1/chat/completions",
            {**CHAT, "messages": [picture]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert answered.status_code == 400
    briefs = listed(client)["exchanges"]
    assert [brief["key"] for brief in briefs] == ["alice"]
    record = client.get(f"/admin/exchanges/{briefs[0]['id']}", headers=ADMIN).json
    kept_url = record["request"]["messages"][0]["content"][1]["image_url"]["url"]
    assert kept_url.startswith("[image/png: 2004 bytes, sha256 ")
    stored = (tmp_path / "exchanges.sqlite3").read_bytes()
    for secret in (b"sk-alice-secret", b"sk-bob-secret", b"admin-secret", IMAGE[:100].encode()):
        assert secret not in stored


def test_filters_and_the_jsonl_export(make_client):
    client = make_client(admin_key="admin-secret", capture="on")
    ask(client, "/v1/chat/completions", CHAT)
    ask(client, "/api/generate", {"model": "fake-model", "prompt": "hi", "stream": False})
    ask(client, "/v1/chat/completions", {"messages": "not a list"})
    assert [b["api"] for b in listed(client, "?api=ollama")["exchanges"]] == ["ollama"]
    assert [b["status"] for b in listed(client, "?status=400")["exchanges"]] == [400]
    assert len(listed(client, "?limit=2")["exchanges"]) == 2
    export = client.get("/admin/exchanges.jsonl", headers=ADMIN)
    lines = [json.loads(line) for line in export.data.decode().splitlines()]
    assert [line["path"] for line in lines] == [
        "/v1/chat/completions",
        "/api/generate",
        "/v1/chat/completions",
    ][::-1]
    assert lines[0]["request"] == {"messages": "not a list"}
    # the thread is `conversation` to the API's clients, as it always was
    assert lines[-1]["conversation"] and "thread" not in lines[-1]


@pytest.mark.parametrize("query, param", [("?limit=0", "limit"), ("?status=abc", "status")])
def test_a_bad_filter_is_named(make_client, query, param):
    client = make_client(admin_key="admin-secret", capture="on")
    response = client.get("/admin/exchanges" + query, headers=ADMIN)
    assert response.status_code == 400 and response.json["error"]["param"] == param


def test_the_exchanges_are_the_admins_and_a_kept_key_sees_its_own_alone(make_client, tmp_path):
    client = make_client(admin_key="admin-secret", keys=keys_file(tmp_path), capture="on")
    alice = {"Authorization": "Bearer sk-alice-secret"}
    bob = {"Authorization": "Bearer sk-bob-secret"}
    for headers in (alice, bob):
        assert ask(client, "/v1/chat/completions", CHAT, headers=headers).status_code == 200
    for headers in ({}, bob):
        assert client.get("/admin/exchanges", headers=headers).status_code == 401
        assert client.get("/admin/exchanges.jsonl", headers=headers).status_code == 401
    everyone = listed(client)["exchanges"]
    assert [brief["key"] for brief in everyone] == ["bob", "alice"]
    own = client.get("/admin/exchanges?key=bob", headers=alice).json["exchanges"]
    assert [brief["key"] for brief in own] == ["alice"]  # her filter cannot widen it
    bobs, alices = (brief["id"] for brief in everyone)
    hers = client.get(f"/admin/exchanges/{alices}", headers=alice)
    assert hers.status_code == 200 and "replica" not in hers.json  # no address of the proxy's
    assert client.get(f"/admin/exchanges/{alices}", headers=ADMIN).json["replica"]
    assert client.get(f"/admin/exchanges/{bobs}", headers=alice).status_code == 404
    export = client.get("/admin/exchanges.jsonl", headers=alice).get_data(as_text=True)
    assert [json.loads(line)["key"] for line in export.splitlines()] == ["alice"]
    assert client.get("/admin/models", headers=alice).status_code == 401  # the rest is not hers
    assert client.get("/admin/exchanges/999", headers=ADMIN).status_code == 404


def test_a_browser_gets_the_inspector_page_with_no_data_in_it(make_client):
    client = make_client(admin_key="admin-secret", capture="on")
    question = "what is on this page?"  # words no nonce of the page can spell
    ask(
        client,
        "/v1/chat/completions",
        {**CHAT, "messages": [{"role": "user", "content": question}]},
    )
    page = client.get("/admin/exchanges", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert question.encode() not in page.data and b"/admin/exchanges" in page.data


def test_the_model_side_and_the_turn_before_it_parted_from(make_client):
    client = make_client(admin_key="admin-secret", capture="on")
    first = [{"role": "system", "content": "Today is Monday."}, {"role": "user", "content": "hi"}]
    ask(client, "/v1/chat/completions", {**CHAT, "messages": first})
    answered = [{"role": "assistant", "content": "Hello world"}, {"role": "user", "content": "x"}]
    ask(client, "/v1/chat/completions", {**CHAT, "messages": first + answered})
    changed = [{**first[0], "content": "Today is Tuesday."}, first[1]]
    ask(client, "/v1/chat/completions", {**CHAT, "messages": changed + answered, "stream": True})
    third, second, one = (
        client.get(f"/admin/exchanges/{brief['id']}", headers=ADMIN).json
        for brief in listed(client)["exchanges"]
    )
    assert one["prompt"] == "system: Today is Monday.\nuser: hi\n" and one["prompt_by"] == "proxy"
    assert one["raw"] == "Hello world" and one["upstream_route"] == "/fake"
    assert one["upstream_body"] == {"prompt": one["prompt"]} and one["divergence"] is None
    assert second["conversation"] == one["conversation"] and second["previous"] == one["id"]
    # the fake's template opens no answer: it renders the answer otherwise than it came
    parted = second["divergence"]
    assert parted["character"] == len(one["prompt"]) and parted["in_answer"]
    assert parted["before"] == "Hello world" and parted["now"].startswith("assistant: Hello")
    assert parted["token"] == parted["character"]  # the fake's tokens are characters
    assert not parted["reused_all"] and parted["evaluated_tokens"] == 5
    assert third["raw"] == "Hello world" and third["streamed"]
    # the system prompt changed: still the thread of the turns before, parted at the change
    assert third["conversation"] == one["conversation"] and third["previous"] == second["id"]
    changed_at = len("system: Today is ")
    assert third["divergence"]["character"] == third["divergence"]["token"] == changed_at
    assert third["divergence"]["before"].startswith("Monday")
    assert third["divergence"]["now"].startswith("Tuesday")
    thread = listed(client, f"?conversation={one['conversation']}")["exchanges"]
    assert [brief["id"] for brief in thread] == [third["id"], second["id"], one["id"]]
    assert thread[0]["conversation"] == one["conversation"] and "thread" not in thread[0]
    assert listed(client, "?conversation=another")["exchanges"] == []


def test_a_long_stream_is_kept_to_a_megabyte_and_said_to_be_cut(make_client):
    client = make_client(FakeBackend(pieces=("x" * 400_000,) * 4), admin_key="admin-secret",
                         capture="on")  # fmt: skip
    streamed = ask(client, "/v1/chat/completions", {**CHAT, "stream": True}).data
    assert len(streamed) > MAX_PART
    (brief,) = listed(client)["exchanges"]
    record = client.get(f"/admin/exchanges/{brief['id']}", headers=ADMIN).json
    assert record["answer_cut"] and len(record["answer"].encode()) == MAX_PART
    assert streamed.decode().startswith(record["answer"])


def test_what_the_store_gives_up_is_counted_on_metrics(make_client):
    client = make_client(admin_key="admin-secret", capture="on", metrics="on",
                         capture_max_exchanges=1)  # fmt: skip
    for _ in range(3):
        ask(client, "/v1/chat/completions", CHAT)
    assert listed(client)["kept"] == 1 and listed(client)["dropped"] == 2
    scraped = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    assert "oai_proxy_exchanges_dropped_total 2.0" in scraped


def test_proxies_sharing_redis_keep_their_exchanges_there(make_client, redis_url, redis_client):
    one, other = (make_client(admin_key="admin-secret", capture="on", redis_url=redis_url)
                  for _ in range(2))  # fmt: skip
    ask(one, "/v1/chat/completions", CHAT)
    ask(other, "/v1/completions", {"model": "fake-model", "prompt": "hi"})
    listed(one)  # each writes what it holds
    briefs = listed(other)["exchanges"]
    assert [brief["path"] for brief in briefs] == ["/v1/completions", "/v1/chat/completions"]
    assert listed(one)["exchanges"] == briefs
    assert redis_client.zcard("oai-proxy:exchanges:ids") == 2


class Speaking(FakeBackend):
    """Transcribes every clip as one word, and speaks every text as a MiB and a half of
    bytes in three pieces."""

    def transcribe(self, asked, caller=None):
        return Transcript(b'{"text": "hello"}')

    def speak(self, asked, caller=None):
        return iter([b"\xff\xfb" + bytes(SPOKEN // 3 - 2)] + [bytes(SPOKEN // 3)] * 2)


SPOKEN = 3 * 512 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_media_are_kept_as_their_type_size_and_hash_never_their_bytes(make_client):
    client = make_client(Speaking(), admin_key="admin-secret", capture="on")
    clip = wav(0.5)
    with client.post("/v1/audio/transcriptions", data={"model": "m", "file": (io.BytesIO(clip),
                     "a.wav", "audio/wav")}) as heard:  # fmt: skip
        assert heard.status_code == 200, heard.data
    with client.post("/v1/audio/speech", json={"model": "m", "voice": "alloy",
                     "input": "hello"}) as said:  # fmt: skip
        spoken = said.get_data()
    later, first = (
        client.get(f"/admin/exchanges/{brief['id']}", headers=ADMIN).json
        for brief in listed(client)["exchanges"]
    )
    assert first["request"] == {
        "model": "m",
        "files": [
            {
                "field": "file",
                "filename": "a.wav",
                "content": f"[audio/wav: {len(clip)} bytes, sha256 {sha256(clip)}]",
            }
        ],
    }
    assert later["answer"] == (
        f"[audio/mpeg: {SPOKEN} bytes, sha256 {sha256(spoken)}]"
    )  # fmt: skip
    assert not later["answer_cut"] and len(spoken) == SPOKEN
