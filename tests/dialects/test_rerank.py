"""Rerank bodies in Jina's and Cohere's shapes, and the answer both read."""

from __future__ import annotations

import pytest

from proxy.core.answers import Ranking
from proxy.core.errors import InvalidRequestError
from proxy.dialects import rerank
from proxy.dialects.dialect import Limits

RANKING = Ranking(((2, 0.9), (0, 0.5), (1, -0.2)), 30)
DOCUMENTS = ["a cat", "a dog", "Paris"]


def test_documents_as_strings_or_text_objects():
    asked = rerank.parse(
        {
            "model": "r",
            "query": "q",
            "documents": ["a cat", {"text": "a dog", "title": "x"}],
            "top_n": 1,
            "return_documents": False,
        }
    )
    assert asked == rerank.RerankRequest("r", "q", ("a cat", "a dog"), 1, False)
    assert rerank.parse({"query": "q", "documents": ["x"]}) == rerank.RerankRequest(
        None, "q", ("x",)
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({"documents": ["x"]}, "query"),
        ({"query": "", "documents": ["x"]}, "query"),
        ({"query": 3, "documents": ["x"]}, "query"),
        ({"query": "q"}, "documents"),
        ({"query": "q", "documents": []}, "documents"),
        ({"query": "q", "documents": "x"}, "documents"),
        ({"query": "q", "documents": ["x", 3]}, "documents[1].text"),
        ({"query": "q", "documents": [{"title": "x"}]}, "documents[0].text"),
        ({"query": "q", "documents": ["x"], "top_n": 0}, "top_n"),
        ({"query": "q", "documents": ["x"], "return_documents": "yes"}, "return_documents"),
        ({"query": "q", "documents": ["x"] * 3}, "documents"),
    ],
)
def test_bad_fields_are_named(body, field):
    with pytest.raises(InvalidRequestError) as caught:
        rerank.parse(body, Limits(max_batch=2))
    assert caught.value.param == field


def test_the_answer_in_jinas_and_coheres_shape():
    asked = rerank.RerankRequest("r", "q", tuple(DOCUMENTS), top_n=2)
    body = rerank.render(asked, RANKING, "reranker", "2")
    assert body["results"] == [
        {"index": 2, "relevance_score": 0.9, "document": {"text": "Paris"}},
        {"index": 0, "relevance_score": 0.5, "document": {"text": "a cat"}},
    ]
    assert body["usage"] == {"prompt_tokens": 30, "total_tokens": 30}
    assert body["meta"]["api_version"] == {"version": "2"}
    assert body["model"] == "reranker" and body["id"].startswith("rerank-")


def test_without_documents_every_result_is_its_index_and_score():
    asked = rerank.RerankRequest("r", "q", tuple(DOCUMENTS), return_documents=False)
    assert rerank.render(asked, RANKING, "r")["results"] == [
        {"index": 2, "relevance_score": 0.9},
        {"index": 0, "relevance_score": 0.5},
        {"index": 1, "relevance_score": -0.2},
    ]


def test_a_tei_body_is_answered_in_teis_shape():
    asked = rerank.parse({"query": "q", "texts": DOCUMENTS, "return_text": True})
    assert asked == rerank.RerankRequest(None, "q", tuple(DOCUMENTS), None, True, tei=True)
    assert rerank.render(asked, RANKING, "r") == [
        {"index": 2, "score": 0.9, "text": "Paris"},
        {"index": 0, "score": 0.5, "text": "a cat"},
        {"index": 1, "score": -0.2, "text": "a dog"},
    ]
    plain = rerank.parse({"query": "q", "texts": DOCUMENTS, "top_n": 1})
    assert rerank.render(plain, RANKING, "r") == [{"index": 2, "score": 0.9}]
    with pytest.raises(InvalidRequestError) as caught:
        rerank.parse({"query": "q", "texts": ["x", 3]})
    assert caught.value.param == "texts[1].text"


def test_an_error_reads_as_coheres_and_as_openais():
    body = rerank.error_body(InvalidRequestError("'query' is required", param="query"))
    assert body["message"] == "'query' is required"
    assert body["error"]["param"] == "query"
