"""Facts about PowerInfer's server and llama.cpp's of 2023, checked against real ones.

The proxy works around each of these defects; pinning them here, talking to the servers
directly, shows the workarounds are still needed and still aimed at the right thing.
"""

import json

import pytest
import requests

from .llama_server import LlamaServer
from .marks import only
from .tinymodel import token_id

pytestmark = pytest.mark.e2e

OLD = ("powerinfer", "llamacpp-2023")
WHY = "facts about the old servers' own defects"
FIRST_BYTE_OF_ZHONG = 3 + 0xE4  # "中" is spelt in byte tokens <0xE4> <0xB8> <0xAD>


@pytest.fixture(scope="module")
def server(model, logs, kind):
    with LlamaServer(
        model, logs / f"facts-{kind}.log", kind=kind, parallel=2, ctx_size=1024
    ) as srv:
        yield srv


def post(server: LlamaServer, path: str, body: dict) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=60)


@only(*OLD, why=WHY)
def test_detection_probes(server, kind):
    assert requests.get(server.url + "/health", timeout=10).status_code == 404
    models = requests.get(server.url + "/v1/models", timeout=10).status_code
    assert models == (200 if kind == "llamacpp-2023" else 404)


@only(*OLD, why=WHY)
def test_detokenizing_part_of_a_character_fails(server):
    assert post(server, "/tokenize", {"content": "中"}).json()["tokens"][-3] == FIRST_BYTE_OF_ZHONG
    broken = post(server, "/detokenize", {"tokens": [FIRST_BYTE_OF_ZHONG]})
    assert broken.status_code == 500
    assert "incomplete UTF-8" in broken.text
    whole = post(server, "/detokenize", {"tokens": [FIRST_BYTE_OF_ZHONG, 3 + 0xB8, 3 + 0xAD]})
    assert whole.json()["content"] == "中"


@only(*OLD, why=WHY)
@pytest.mark.parametrize("n_predict,generated", [(1, 4), (2, 5), (3, 4), (5, 6)])
def test_they_overshoot_n_predict(server, n_predict, generated):
    """The limit is checked from the third token on, a token late (and 2 reads as none)."""
    body = {
        "prompt": "the cat",
        "n_predict": n_predict,
        "temperature": 0,
        "stream": True,
        "logit_bias": [[token_id("moon"), 100]],
    }
    with requests.post(server.url + "/completion", json=body, stream=True, timeout=60) as answer:
        chunks = [json.loads(line[len(b"data: ") :]) for line in answer.iter_lines() if line]
    assert "".join(chunk["content"] for chunk in chunks) == " moon" * generated
    assert chunks[-1]["stopped_limit"] is True
