"""Pictures through the proxy from stable-diffusion.cpp's real sd-server (built from the
sdist of stable-diffusion-cpp-python, drawing the tiny model of :mod:`.sdmodel`), with the real
``openai`` SDK: a generation and an edit, with OpenAI's ``seed``, come back as the very bytes
sd-server draws when asked directly with the seed its own way; what sd-server would not
honour is refused by name before it is asked; a second key's picture is drawn in its turn,
not behind a first key's line, and its chat on llama-server is answered under a flood of
them. The proxy runs sd-server itself for a model file, and swaps it
with llama-server within a memory budget that holds one of them."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading

import openai
import pytest
import requests

from tests.images import picture
from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .managed import admin, program_of, servers_of, with_file
from .sd_server import SdServer, find_sd_server
from .sdmodel import write_sd_model
from .smollm2 import smollm2

pytestmark = [pytest.mark.e2e]

MODELS = """
[models.sd]
backend = "sdserver"
upstreams = ["{sd}"]
[models.chat]
upstreams = ["{chat}"]
"""
KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"

[[keys]]
name = "bob"
key = "sk-bob"
"""
ADMIN = "admin-key"


@pytest.fixture(scope="module")
def sd_model(tmp_path_factory):
    return write_sd_model(tmp_path_factory.mktemp("sd-model") / "sdxs.gguf")


@pytest.fixture(scope="module")
def served(tmp_path_factory, logs, sd_model, model):
    """``(sd-server, proxy)``, the proxy serving a chat model on llama-server beside it."""
    folder = tmp_path_factory.mktemp("sd-server")
    (folder / "keys.toml").write_text(KEYS)
    with (
        SdServer(sd_model, logs / "sd-server.log") as sd,
        LlamaServer(model, logs / "sd-chat.log") as chat,
    ):
        (folder / "models.toml").write_text(MODELS.format(sd=sd.url, chat=chat.url))
        argv = ("--config", str(folder / "models.toml"), "--keys", str(folder / "keys.toml"),
                "--admin-key", ADMIN, "--threads", "16")  # fmt: skip
        with ProxyProcess(sd.url, logs / "proxy-sd-server.log", args=argv) as proxy:
            yield sd, proxy


def direct(sd: SdServer, prompt: str, seed=None, **fields) -> list:
    """The pictures sd-server draws when asked directly, the seed its own way."""
    if seed is not None:
        prompt += f"<sd_cpp_extra_args>{json.dumps({'seed': seed})}</sd_cpp_extra_args>"
    reply = requests.post(sd.url + "/v1/images/generations", json={"prompt": prompt, **fields},
                          timeout=60)  # fmt: skip
    assert reply.status_code == 200, reply.text
    return [base64.b64decode(each["b64_json"]) for each in reply.json()["data"]]


def bytes_of(answer) -> list:
    return [base64.b64decode(each.b64_json) for each in answer.data]


def test_a_seeded_generation_is_the_picture_sd_server_draws(served):
    sd, proxy = served
    answer = proxy.sdk("sk-alice").images.generate(
        model="sd", prompt="a red fox in snow", n=2, size="64x64", response_format="b64_json",
        extra_body={"seed": 7},
    )  # fmt: skip
    drawn = bytes_of(answer)
    assert drawn == direct(sd, "a red fox in snow", seed=7, n=2, size="64x64")
    assert len(drawn) == 2 and drawn[0] != drawn[1]
    assert all(each.startswith(b"\x89PNG") for each in drawn)
    unseeded = proxy.sdk("sk-alice").images.generate(model="sd", prompt="a red fox in snow")
    assert bytes_of(unseeded) == direct(sd, "a red fox in snow")
    assert bytes_of(unseeded)[0] != drawn[0]


def test_an_edit_is_the_picture_sd_server_draws(served):
    sd, proxy = served
    fox = picture(size=(64, 64))
    answer = proxy.sdk("sk-alice").images.edit(
        model="sd", prompt="the fox at dusk", image=[("fox.png", fox, "image/png")],
        extra_body={"seed": 3},
    )  # fmt: skip
    prompt = 'the fox at dusk<sd_cpp_extra_args>{"seed": 3}</sd_cpp_extra_args>'
    files = [("image[]", ("fox.png", fox, "image/png"))]
    reply = requests.post(sd.url + "/v1/images/edits", data={"prompt": prompt}, files=files,
                          timeout=60)  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert bytes_of(answer) == [base64.b64decode(reply.json()["data"][0]["b64_json"])]


def test_links_are_the_proxys_own_kept_for_the_key_alone(served):
    """sd-server answers no links: the proxy keeps the pictures as the key's files for an
    hour, and links them."""
    sd, proxy = served
    answer = proxy.sdk("sk-alice").images.generate(
        model="sd", prompt="a fox at dawn", n=2, response_format="url", extra_body={"seed": 5}
    )
    drawn = direct(sd, "a fox at dawn", seed=5, n=2)
    alice, bob = ({"Authorization": f"Bearer sk-{name}"} for name in ("alice", "bob"))
    fetched = [requests.get(each.url, headers=alice, timeout=10) for each in answer.data]
    assert [reply.content for reply in fetched] == drawn
    assert {reply.headers["Content-Type"] for reply in fetched} == {"image/png"}
    assert all(each.b64_json is None for each in answer.data)
    assert requests.get(answer.data[0].url, headers=bob, timeout=10).status_code == 404
    file_id = answer.data[0].url.split("/")[-2]
    kept = proxy.sdk("sk-alice").files.retrieve(file_id)
    assert (kept.purpose, kept.bytes, kept.expires_at - kept.created_at) == (
        "image_output",
        len(drawn[0]),
        3600,
    )


@pytest.mark.parametrize(
    "fields, param",
    [({"quality": "high"}, "quality"), ({"size": "100x100"}, "size"), ({"n": 9}, "n")],
    ids=["quality", "size", "n"],
)
def test_what_sd_server_would_not_honour_is_refused_by_name(served, fields, param):
    _, proxy = served
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.sdk("sk-alice").images.generate(model="sd", prompt="a fox", extra_body=fields)
    assert caught.value.body["param"] == param


def test_a_chat_to_a_model_that_draws_is_refused_by_name(served):
    _, proxy = served
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.sdk("sk-alice").chat.completions.create(
            model="sd", messages=[{"role": "user", "content": "Hello"}]
        )
    assert "does not chat" in caught.value.body["message"]
    listed = requests.get(proxy.url + "/v1/models", timeout=10,
                          headers={"Authorization": "Bearer sk-alice"}).json()["data"]  # fmt: skip
    (card,) = [each for each in listed if each["id"] == "sd"]
    assert card["capabilities"] == ["image_generation"]


def test_a_second_keys_picture_is_drawn_in_its_turn(served):
    """Alice's four larger pictures wait their turns on the one-at-a-time server; Bob's,
    asked once three of hers wait, is drawn next, not fifth."""
    _, proxy = served
    finished: list = []

    def draw(key: str, size: str) -> None:
        proxy.sdk(key, timeout=300).images.generate(model="sd", prompt="a fox", size=size)
        finished.append(key)

    flood = [threading.Thread(target=draw, args=("sk-alice", "192x192")) for _ in range(4)]
    for thread in flood:
        thread.start()
    wait_for(lambda: waiting(proxy, "alice") == 3, "three of alice's pictures to wait")
    draw("sk-bob", "64x64")
    for thread in flood:
        thread.join()
    assert finished.index("sk-bob") == 1, finished


def test_a_second_keys_chat_is_answered_under_a_flood_of_pictures(served):
    """Alice keeps six larger pictures in the line for sd-server; Bob's chat, on
    llama-server, is answered while hers still wait."""
    _, proxy = served
    flood = [
        threading.Thread(target=lambda: proxy.sdk("sk-alice", timeout=300).images.generate(
            model="sd", prompt="a fox", size="192x192"))
        for _ in range(6)
    ]  # fmt: skip
    for thread in flood:
        thread.start()
    wait_for(lambda: waiting(proxy, "alice") >= 4, "alice's pictures to wait")
    reply = proxy.sdk("sk-bob").chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert reply.choices[0].message.content is not None
    assert waiting(proxy, "alice") >= 1  # answered while her pictures still wait
    for thread in flood:
        thread.join()


def test_a_picture_whose_client_leaves_while_it_waits_is_never_drawn(served, logs):
    """Bob's place in the line is freed as he leaves, while Alice's picture is drawn: one
    picture is drawn, hers. (sd-server cannot stop a picture it has begun: its own jobs'
    cancel answers 409 while one is drawn, so a client that leaves then frees the slot as
    the picture ends.)"""
    sd, proxy = served
    drawn = (logs / "sd-server.log").read_text().count("generate_image completed")
    slow = 'a fox<sd_cpp_extra_args>{"sample_params": {"sample_steps": 6}}</sd_cpp_extra_args>'
    alice = threading.Thread(target=lambda: proxy.sdk("sk-alice", timeout=300).images.generate(
        model="sd", prompt=slow, size="192x192"))  # fmt: skip
    alice.start()
    wait_for(lambda: busy(proxy) == 1, "alice's picture to be drawn")
    body = json.dumps({"model": "sd", "prompt": "a fox"}).encode()
    with socket.create_connection(("127.0.0.1", proxy.port)) as bob:
        bob.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    b"Authorization: Bearer sk-bob\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (proxy.port, len(body), body))  # fmt: skip
        wait_for(lambda: waiting(proxy, "bob") == 1, "bob's picture to wait")
    wait_for(lambda: waiting(proxy, "bob") == 0, "bob's place to be freed as he leaves")
    assert alice.is_alive()  # freed while hers is drawn, not once it ends
    alice.join()
    wait_for(lambda: busy(proxy) == 0, "the slot to be free")
    assert (logs / "sd-server.log").read_text().count("generate_image completed") == drawn + 1


def busy(proxy: ProxyProcess) -> float:
    return _summed(proxy, "oai_proxy_slots_busy", 'model="sd"')


def waiting(proxy: ProxyProcess, key: str) -> float:
    return _summed(proxy, "oai_proxy_key_queue_length", f'key="{key}"')


def _summed(proxy: ProxyProcess, name: str, label: str) -> float:
    """The sum of ``name``'s series on ``/metrics`` whose labels hold ``label``."""
    text = requests.get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"},
                        timeout=10).text  # fmt: skip
    found = re.findall(rf"^{name}\{{(.*)\}} (\S+)$", text, re.M)
    return sum(float(value) for labels, value in found if label in labels)


def test_the_proxy_runs_sd_server_and_swaps_it_with_llama_server(sd_model, tmp_path, logs):
    """Each started on first use, the other stopped to make room: the budget holds
    sd-server's model file and a little more, not SmolLM2's beside it."""
    empty = tmp_path / "loras"
    empty.mkdir()
    text = f"""
max_memory = {sd_model.stat().st_size + 64 * 2**20}
[models.sd]
backend = "sdserver"
model = "{sd_model}"
args = ["-t", "1", "--steps", "1", "--cfg-scale", "1", "-W", "64", "-H", "64",
        "--lora-model-dir", "{empty}"]
[models.chat]
model = "{smollm2()}"
args = ["-np", "1", "-c", "1024"]
"""
    program = program_of("llamacpp")
    with with_file(tmp_path, logs, "sd-managed", text, "--sd-server", str(find_sd_server()),
                   program=program) as proxy:  # fmt: skip
        assert servers_of(proxy) == []
        client = proxy.sdk(timeout=300)
        for name in ("sd", "chat", "sd"):
            if name == "sd":
                (drawn,) = bytes_of(client.images.generate(model="sd", prompt="a red fox"))
                assert drawn.startswith(b"\x89PNG")
            else:
                reply = client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
                )
                assert reply.choices[0].message.content is not None
            assert len(servers_of(proxy)) == 1
            assert ready(proxy) == [name]


def ready(proxy: ProxyProcess) -> list:
    """The models whose servers are ready now."""
    return [
        m["id"]
        for m in admin(proxy, "GET", "/models").json()["models"]
        if m["replicas"][0]["managed"]["state"] == "ready"
    ]
