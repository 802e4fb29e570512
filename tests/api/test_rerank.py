"""``POST /v1/rerank`` (and ``/rerank``, ``/v2/rerank``) over a fake reranker."""

from __future__ import annotations

import pytest

from proxy.backends.base import Backend
from proxy.core.errors import UpstreamUnavailableError
from tests.fakes.backend import FakeBackend

BODY = {
    "model": "fake-model",
    "query": "the cat sat",
    "documents": ["a dog ran", "the cat sat down", {"text": "a cat"}],
}


@pytest.mark.parametrize(
    "path, version", [("/v1/rerank", "1"), ("/rerank", "1"), ("/v2/rerank", "2")]
)
def test_documents_come_back_most_relevant_first(client, path, version):
    response = client.post(path, json={**BODY, "top_n": 2})
    assert response.status_code == 200
    body = response.get_json()
    assert [(r["index"], r["relevance_score"], r["document"]["text"]) for r in body["results"]] == [
        (1, 3.0, "the cat sat down"),
        (2, 1.0, "a cat"),
    ]
    assert body["usage"]["prompt_tokens"] == 9 + 16 + 5 + 3 * 11
    assert body["meta"]["api_version"]["version"] == version
    assert body["model"] == "fake-model"


def test_a_bad_field_is_a_400_in_coheres_and_openais_shape(client):
    response = client.post("/v1/rerank", json={"query": "q", "documents": [{"title": "x"}]})
    assert response.status_code == 400
    body = response.get_json()
    assert body["message"] == body["error"]["message"]
    assert body["error"]["param"] == "documents[0].text"


def test_a_model_that_does_not_rerank_is_named(make_client):
    class TextOnly(FakeBackend):
        rerank = Backend.rerank  # what a backend does unless it reranks

    response = make_client(TextOnly()).post("/v1/rerank", json=BODY)
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "model"
    assert response.get_json()["message"] == (
        "the model 'fake-model' does not rerank: a llama-server started with --reranking does, "
        "and an OpenAI-compatible upstream with /rerank"
    )


def test_an_unreachable_reranker_is_a_503(make_client):
    fake = FakeBackend(error=UpstreamUnavailableError("down", retry_after=2))
    response = make_client(fake).post("/v1/rerank", json=BODY)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"


def test_the_models_list_says_what_each_model_can_do(client):
    assert client.get("/v1/models").get_json()["data"][0]["capabilities"] == ["completion"]
