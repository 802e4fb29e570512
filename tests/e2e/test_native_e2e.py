"""llama.cpp's own API through the proxy, on each generation of server.cpp: ``/completion``
answers what the server answers the same body, whole and streamed, key for key, and the
key is charged the tokens the server counted; the server's ``/tokenize`` and ``/detokenize``
answer through the proxy as they answer directly."""

from __future__ import annotations

import json

import pytest
import requests

from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import CURRENT, only

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer admin-key"}
# a body the server reads every field of: its own limits, a seed, probabilities
BODY = {"prompt": "the cat", "n_predict": 6, "temperature": 0, "seed": 7, "n_probs": 2}
# the server's own measures of time, which differ from one run to the next
TIMED = ("timings", "t_ms", "prompt_ms", "predicted_ms")


@pytest.fixture(scope="module")
def served(model, logs, kind):
    """``(server, proxy)``: the tiny model on a server of ``kind``, behind the proxy."""
    with (
        LlamaServer(model, logs / f"native-{kind}.log", kind=kind, parallel=1) as server,
        ProxyProcess(
            server.url, logs / f"proxy-native-{kind}.log", args=("--admin-key", "admin-key")
        ) as proxy,
    ):
        yield server, proxy


def untimed(answer: dict) -> dict:
    """``answer`` without what differs from one run to the next: the server's measures of
    time, and its probabilities' last digits (its tokens and their candidates stay)."""
    kept = {key: value for key, value in answer.items() if key not in TIMED and key != "model"}
    if "completion_probabilities" in kept:
        kept["completion_probabilities"] = [
            (
                each.get("id", each.get("content")),
                [top.get("id") for top in each.get("top_logprobs", each.get("probs", ()))],
            )
            for each in kept["completion_probabilities"]
        ]
    return kept


def events(reply: requests.Response) -> list:
    return [json.loads(line[5:]) for line in reply.iter_lines() if line.startswith(b"data:")]


def charged(proxy) -> tuple:
    rows = requests.get(proxy.url + "/admin/usage", headers=ADMIN, timeout=10).json()["usage"]
    return (
        sum(row["prompt_tokens"] for row in rows),
        sum(row["completion_tokens"] for row in rows),
    )


def served_name(proxy) -> str:
    """The model's name as the proxy lists it: what its answers name, never a path."""
    return requests.get(proxy.url + "/v1/models", timeout=10).json()["data"][0]["id"]


def test_a_whole_answer_is_the_servers_own_and_charged(served):
    server, proxy = served
    own = requests.post(server.url + "/completion", json=BODY, timeout=60).json()
    before = charged(proxy)
    answer = requests.post(proxy.url + "/completion", json=BODY, timeout=60)
    assert answer.status_code == 200, answer.text
    assert untimed(answer.json()) == untimed(own)
    assert answer.json().get("model", served_name(proxy)) == served_name(proxy)
    prompt, output = charged(proxy)
    assert (prompt - before[0], output - before[1]) == (
        own["tokens_evaluated"],
        own["tokens_predicted"],
    )


def test_a_stream_is_the_servers_own_lines_and_charged(served):
    server, proxy = served
    body = {**BODY, "stream": True}
    with requests.post(server.url + "/completion", json=body, stream=True, timeout=60) as r:
        own = events(r)
    before = charged(proxy)
    with requests.post(proxy.url + "/completion", json=body, stream=True, timeout=60) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        answer = events(r)
    assert [untimed(event) for event in answer] == [untimed(event) for event in own]
    assert {event["model"] for event in answer if "model" in event} <= {served_name(proxy)}
    prompt, output = charged(proxy)
    assert (prompt - before[0], output - before[1]) == (
        own[-1]["tokens_evaluated"],
        own[-1]["tokens_predicted"],
    )


@pytest.mark.parametrize(
    "path, body",
    [("/tokenize", {"content": "the cat sat"}), ("/detokenize", {"tokens": [300, 301, 302]})],
)
def test_the_servers_token_routes_answer_as_they_do_directly(served, path, body):
    server, proxy = served
    own = requests.post(server.url + path, json=body, timeout=60)
    answer = requests.post(proxy.url + path, json=body, timeout=60)
    assert (answer.status_code, answer.json()) == (own.status_code, own.json())


@only(CURRENT, why="several prompts in one body are current llama-server's")
def test_several_prompts_are_answered_whole_and_charged_their_sum(served):
    server, proxy = served
    body = {**BODY, "prompt": ["the cat", "a dog"]}
    own = requests.post(server.url + "/completion", json=body, timeout=60).json()
    before = charged(proxy)
    answer = requests.post(proxy.url + "/completion", json=body, timeout=60).json()
    assert [untimed(each) for each in answer] == [untimed(each) for each in own]
    prompt, output = charged(proxy)
    assert (prompt - before[0], output - before[1]) == (
        sum(each["tokens_evaluated"] for each in own),
        sum(each["tokens_predicted"] for each in own),
    )


@only(CURRENT, why="/props and /slots are current llama-server's")
def test_props_name_the_models_file_not_its_place(served):
    server, proxy = served
    own = requests.get(server.url + "/props", timeout=10).json()
    answer = requests.get(proxy.url + "/props", timeout=10).json()
    assert own["model_path"].endswith(answer["model_path"]) and "/" not in answer["model_path"]
    assert answer["total_slots"] == own["total_slots"]
    slots = requests.get(proxy.url + "/slots", timeout=10)
    assert slots.status_code == 200 and len(slots.json()) == own["total_slots"]
