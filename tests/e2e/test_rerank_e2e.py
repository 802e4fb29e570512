"""Reranking through the proxy to real servers started with ``--reranking``: a tiny reranker
(:mod:`.rerankmodel`) that scores a document by the keyword it holds, read through the real
``cohere`` SDK (its v2 and v1 APIs), an Open WebUI-style raw request, a Jina-style one and
a Hugging Face TEI-style one.

The proxy runs the reranker itself from a models file (``reranking = true``), on llama-server,
beside a chat model it routes by ``model``; and it fronts a llama-server started with
``--reranking`` by hand, whose own answer it must order as the server scores.

Each reranking server has one slot: with two, the first answer after llama-server started
scored two of these documents otherwise than every later answer to the same request did.
"""

from __future__ import annotations

import pytest
import requests

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .managed import admin, program_of, with_file
from .marks import CURRENT
from .rerankmodel import ASKED, BEST_FIRST, EXPECTED_ORDER, QUERY, expected_score

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fleet(reranker, model, tmp_path_factory, logs):
    """The proxy running ``ranker`` (``reranking = true``) and ``chat`` (a chat model)."""
    text = (
        f'default = "chat"\n'
        f'[models.ranker]\nmodel = "{reranker}"\nreranking = true\n'
        f'args = ["-np", "1", "-c", "2048"]\n'
        f'[models.chat]\nmodel = "{model}"\nargs = ["-np", "1", "-c", "2048"]\n'
    )
    with with_file(
        tmp_path_factory.mktemp("rerank-fleet"), logs, "rerank", text, program=program_of(CURRENT)
    ) as proxy:
        yield proxy


def test_the_cohere_sdk_gets_the_documents_best_first(fleet):
    answer = fleet.cohere().rerank(model="ranker", query=QUERY, documents=ASKED, top_n=4)
    assert [ASKED[result.index] for result in answer.results] == BEST_FIRST[:4]
    assert [round(result.relevance_score, 4) for result in answer.results] == [
        round(expected_score(keyword), 4) for keyword in EXPECTED_ORDER[:4]
    ]


def test_the_cohere_v1_sdk_gets_the_documents_themselves(fleet):
    answer = fleet.cohere(version=1).rerank(
        model="ranker", query=QUERY, documents=ASKED, return_documents=True
    )
    assert [result.document.text for result in answer.results] == BEST_FIRST
    assert answer.meta.api_version.version == "1"


def test_an_open_webui_style_request(fleet):
    """Open WebUI's external reranker posts model, query, documents and top_n, and reads
    each result's index and relevance_score."""
    response = requests.post(
        fleet.url + "/v1/rerank",
        timeout=120,
        json={"model": "ranker", "query": QUERY, "documents": ASKED, "top_n": 2},
    )
    assert response.status_code == 200
    body = response.json()
    assert [ASKED[result["index"]] for result in body["results"]] == BEST_FIRST[:2]
    assert body["usage"]["prompt_tokens"] > 0


def test_usage_counts_the_tokens_the_server_scored(fleet):
    def used() -> int:
        rows = admin(fleet, "GET", "/usage").json()["usage"]
        return sum(row["prompt_tokens"] for row in rows if row["model"] == "ranker")

    before = used()
    body = requests.post(
        fleet.url + "/v1/rerank",
        timeout=120,
        json={"model": "ranker", "query": QUERY, "documents": ASKED},
    ).json()
    wait_for(
        lambda: used() - before == body["usage"]["prompt_tokens"] > 0,
        "the usage to count the documents' tokens",
    )


def test_a_jina_style_request_with_text_objects(fleet):
    response = requests.post(
        fleet.url + "/rerank",
        timeout=120,
        json={"model": "ranker", "query": QUERY, "documents": [{"text": text} for text in ASKED]},
    )
    assert [result["document"]["text"] for result in response.json()["results"]] == BEST_FIRST


def test_a_tei_style_request_gets_teis_list(fleet):
    """Hugging Face TEI's clients post ``texts`` to ``/rerank`` and read a bare list."""
    response = requests.post(
        fleet.url + "/rerank",
        timeout=120,
        json={"model": "ranker", "query": QUERY, "texts": ASKED, "return_text": True},
    )
    assert [item["text"] for item in response.json()] == BEST_FIRST
    assert [round(item["score"], 4) for item in response.json()] == [
        round(expected_score(keyword), 4) for keyword in EXPECTED_ORDER
    ]


def test_a_model_that_does_not_rerank_is_named_and_the_models_say_which_do(fleet):
    response = requests.post(
        fleet.url + "/v2/rerank",
        timeout=120,
        json={"model": "chat", "query": QUERY, "documents": ASKED},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert "'chat' does not rerank" in response.json()["message"]
    listed = {
        m["id"]: m["capabilities"]
        for m in requests.get(fleet.url + "/v1/models", timeout=30).json()["data"]
    }
    assert listed["ranker"] == ["rerank"] and "completion" in listed["chat"]
    assert fleet.ollama().show("ranker").capabilities == ["rerank"]


def test_bad_input_is_a_400_naming_the_field(fleet):
    response = requests.post(
        fleet.url + "/v1/rerank",
        timeout=30,
        json={"model": "ranker", "query": QUERY, "documents": ["a", {"title": "b"}]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "documents[1].text"


def test_a_reranker_started_by_hand_is_ordered_as_it_scores(reranker, logs):
    with (
        LlamaServer(
            reranker, logs / "llama-server-rerank.log", parallel=1, extra_args=["--reranking"]
        ) as server,
        ProxyProcess(server.url, logs / "proxy-rerank-external.log") as proxy,
    ):
        own = requests.post(
            server.url + "/v1/rerank", timeout=120, json={"query": QUERY, "documents": ASKED}
        ).json()
        answer = proxy.cohere().rerank(model="any", query=QUERY, documents=ASKED)
        assert [(r.index, round(r.relevance_score, 5)) for r in answer.results] == [
            (r["index"], round(r["relevance_score"], 5)) for r in own["results"]
        ]
        assert [ASKED[r.index] for r in answer.results] == BEST_FIRST
