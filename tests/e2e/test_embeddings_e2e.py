"""Embeddings, tokenization and the GLM API through the proxy, against real servers of every
kind (``kind`` fixture): the GLM API's chat, whole and streamed, on each; its embeddings on
current llama-server (what each generation embeds is the OpenAI API's tests')."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest
import requests

from tests.e2e.llama_server import LlamaServer
from tests.e2e.marks import API, CURRENT, only
from tests.processes import ProxyProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def embedding_server(model, logs, kind):
    with LlamaServer(
        model, logs / f"embedding-{kind}.log", kind=kind, parallel=2, embedding=True
    ) as server:
        yield server


@pytest.fixture(scope="module")
def chat_server(model, logs, kind):
    with LlamaServer(model, logs / f"chat-{kind}.log", kind=kind, parallel=2) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(embedding_server, logs):
    """The usual set-up: one server doing both chat and embeddings."""
    with ProxyProcess(
        embedding_server.url, logs / f"proxy-embeddings-{embedding_server.kind}.log"
    ) as process:
        yield process


@pytest.fixture(scope="module")
def split_proxy(chat_server, embedding_server, logs):
    """Chat from one server, embeddings from another (--embedding-api)."""
    with ProxyProcess(
        chat_server.url,
        logs / f"proxy-split-{chat_server.kind}.log",
        args=["--embedding-api", embedding_server.url],
    ) as process:
        yield process


def direct_embedding(server: LlamaServer, text: str) -> list:
    """The server's own vector: from /embedding on old servers, /v1/embeddings on current."""
    if server.legacy:
        body = requests.post(server.url + "/embedding", json={"content": text}, timeout=30)
        return body.json()["embedding"]
    body = requests.post(server.url + "/v1/embeddings", json={"input": text}, timeout=30).json()
    return body["data"][0]["embedding"]


def vector(embedding) -> list:
    """The SDK hands back base64 undecoded when the caller asked for base64 itself."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return embedding


@pytest.mark.parametrize(
    "encoding", [openai.NOT_GIVEN, "float", "base64"], ids=["sdk-default-base64", "float", "base64"]
)
def test_sdk_embeddings_equal_the_servers(proxy, embedding_server, encoding):
    client = proxy.sdk()
    texts = ["the cat sat", "a dog ran home"]
    result = client.embeddings.create(model="tiny", input=texts, encoding_format=encoding)
    assert [item.index for item in result.data] == [0, 1]
    for text, item in zip(texts, result.data, strict=True):
        expected = direct_embedding(embedding_server, text)
        assert len(vector(item.embedding)) == len(expected) == 64
        assert vector(item.embedding) == pytest.approx(expected, abs=1e-5)
    if embedding_server.legacy:  # an old server tells no count: its tokens of the texts
        own = sum(len(requests.post(embedding_server.url + "/tokenize", json={"content": t},
                                    timeout=10).json()["tokens"]) for t in texts)  # fmt: skip
    else:  # the server's own count, with the marks its model adds
        own = requests.post(embedding_server.url + "/v1/embeddings", json={"input": texts},
                            timeout=30).json()["usage"]["prompt_tokens"]  # fmt: skip
    assert result.usage.prompt_tokens == own


def test_embeddings_from_a_separate_server(split_proxy, chat_server, embedding_server):
    client = split_proxy.sdk()
    vector = client.embeddings.create(model="tiny", input="the cat sat").data[0].embedding
    assert vector == pytest.approx(direct_embedding(embedding_server, "the cat sat"), abs=1e-5)
    assert client.completions.create(model="tiny", prompt="the", max_tokens=3).choices[0].text
    health = split_proxy.health()
    assert health["embedding_upstream"]["url"] == embedding_server.url
    assert health["embedding_upstream"]["in_flight"] == health["in_flight"] == 0


def test_embeddings_off_is_a_clear_501(chat_server, logs):
    with ProxyProcess(chat_server.url, logs / f"proxy-noembed-{chat_server.kind}.log") as proxy:
        response = requests.post(proxy.url + "/v1/embeddings", json={"input": "x"}, timeout=30)
    assert response.status_code == 501
    assert "--embedding" in response.json()["error"]["message"]


@only(CURRENT, why=API)
def test_glm_embedding(proxy, embedding_server):
    body = requests.post(
        proxy.url + "/embedding", json={"prompt": ["the cat sat"]}, timeout=30
    ).json()
    assert body["object"] == "embedding" and len(body["data"]) == 1
    vector = body["data"][0]
    assert vector == pytest.approx(direct_embedding(embedding_server, "the cat sat"), abs=1e-5)
    assert any(vector)


def test_tokenize_routes_match_the_server(proxy, embedding_server):
    url = embedding_server.url
    ids = requests.post(url + "/tokenize", json={"content": "hello world"}, timeout=10).json()[
        "tokens"
    ]
    pieces = [
        requests.post(url + "/detokenize", json={"tokens": [token]}, timeout=10).json()["content"]
        for token in ids
    ]  # each a whole word: safe to ask any kind
    glm = requests.post(proxy.url + "/tokenize", json={"prompt": "hello world"}, timeout=10).json()
    assert glm == {"tokenIds": ids, "tokens": pieces}
    short = requests.post(
        proxy.url + "/tokenize", json={"prompt": "hello world", "max_length": 1}, timeout=10
    ).json()
    assert short["tokenIds"] == ids[:1]
    openai_style = requests.post(
        proxy.url + "/v1/tokenize", json={"prompt": "hello world"}, timeout=10
    ).json()
    assert openai_style == {"tokens": ids, "pieces": pieces, "count": len(ids)}
    back = requests.post(proxy.url + "/v1/detokenize", json={"tokens": ids}, timeout=10).json()
    assert back["prompt"].strip() == "hello world"


def test_glm_chat_and_stream_agree(proxy):
    body = {"prompt": "hi", "history": [["hello", "the cat"]], "max_length": 12, "temperature": 0}
    answer = requests.post(proxy.url + "/chat", json=body, timeout=30).json()
    assert answer["object"] == "chat.completion" and answer["completion_tokens"] > 0
    assert answer["total_tokens"] == answer["prompt_tokens"] + answer["completion_tokens"]
    deltas, final = [], None
    with requests.post(proxy.url + "/chat-stream", json=body, stream=True, timeout=30) as stream:
        for line in stream.iter_lines():
            if not line:
                continue
            data = line.decode("utf-8").removeprefix("data: ")
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "delta" in event:
                deltas.append(event["delta"])
            else:
                final = event
    assert "".join(deltas) == final["content"] == answer["content"]
    assert final["completion_tokens"] == answer["completion_tokens"]
