"""Facts about llama-server, checked against a real one serving the tiny model.

The proxy relies on these upstream behaviours (greedy determinism, logit_bias, stop_type,
the streaming format, the chat template in /props), so they are pinned here, talking to
llama-server directly, before any proxy code is involved.
"""

import json

import pytest
import requests

from .llama_server import LlamaServer
from .tinymodel import CHAT_TEMPLATE, EOS_ID, token_id

pytestmark = pytest.mark.e2e

PROMPT = "the cat"


@pytest.fixture(scope="module")
def server(model, logs):
    with LlamaServer(model, logs / "tiny-server.log", parallel=2, ctx_size=2048) as srv:
        yield srv


def complete(server, **body):
    """POST /completion (non-streaming) and return the decoded JSON."""
    response = requests.post(
        server.url + "/completion", json={"prompt": PROMPT, **body}, timeout=60
    )
    response.raise_for_status()
    return response.json()


def test_greedy_completion_is_deterministic(server):
    first = complete(server, n_predict=8, temperature=0)
    second = complete(server, n_predict=8, temperature=0)
    assert first["content"].strip()
    assert first["tokens_predicted"] == 8
    assert first["stop"] is True
    assert first["stop_type"] == "limit"
    assert second["content"] == first["content"]


def test_eos_bias_stops_immediately(server):
    result = complete(server, n_predict=8, temperature=0, logit_bias=[[EOS_ID, 100]])
    assert result["stop_type"] == "eos"
    assert result["content"] == ""
    assert result["tokens_predicted"] <= 1


def test_bias_forces_chosen_word(server):
    result = complete(server, n_predict=3, temperature=0, logit_bias=[[token_id("moon"), 100]])
    assert result["content"] == " moon moon moon"


def test_props_report_the_models_chat_template(server):
    props = requests.get(server.url + "/props", timeout=10).json()
    assert props["chat_template"] == CHAT_TEMPLATE
    assert props["total_slots"] == 2
    assert (props["bos_token"], props["eos_token"]) == ("<s>", "</s>")


def test_tokenize_uses_the_word_pieces(server):
    response = requests.post(
        server.url + "/tokenize", json={"content": "hello world", "with_pieces": True}, timeout=10
    )
    assert response.json()["tokens"] == [
        {"id": token_id("hello"), "piece": " hello"},
        {"id": token_id("world"), "piece": " world"},
    ]


def test_stream_ends_with_a_stop_chunk(server):
    body = {"prompt": PROMPT, "n_predict": 8, "temperature": 0, "stream": True}
    with requests.post(server.url + "/completion", json=body, stream=True, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    assert all(line.startswith("data: ") for line in lines)
    chunks = [json.loads(line[len("data: ") :]) for line in lines]
    assert [chunk["stop"] for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    final = chunks[-1]
    assert final["stop_type"] == "limit"
    assert final["tokens_predicted"] == 8
    streamed = "".join(chunk["content"] for chunk in chunks)
    assert streamed == complete(server, n_predict=8, temperature=0)["content"]


def test_restart_on_the_same_port_after_a_crash(model, tmp_path):
    with LlamaServer(model, tmp_path / "llama-server.log", parallel=1, ctx_size=512) as srv:
        url = srv.url
        srv.kill()
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/health", timeout=2)
        srv.start()
        assert srv.url == url
        assert requests.get(url + "/health", timeout=2).json() == {"status": "ok"}
