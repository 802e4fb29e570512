"""A reranking server's answer, read and checked."""

from __future__ import annotations

import pytest

from proxy.backends.wire import ranking
from proxy.core.answers import Ranking
from proxy.core.errors import UpstreamError


def test_the_body_asks_for_every_documents_score():
    assert ranking.payload("q", ("a", "b")) == {"query": "q", "documents": ["a", "b"], "top_n": 2}


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ({"prompt_tokens": 17, "total_tokens": 17}, 17),
        ({"total_tokens": 12}, 12),  # Jina's
        ({"prompt_tokens": True}, 0),
        (None, 0),
    ],
)
def test_scores_are_read_the_most_relevant_first_ties_in_document_order(usage, tokens):
    body = {
        "results": [
            {"index": 2, "relevance_score": 0.1},
            {"index": 0, "relevance_score": 0.9},
            {"index": 1, "relevance_score": 0.1},
        ],
        "usage": usage,
    }
    assert ranking.ranking(body, 3, "up", "/rerank") == Ranking(
        ((0, 0.9), (1, 0.1), (2, 0.1)), tokens
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"results": None},
        {"results": [{"index": 0}]},
        {"results": [{"index": 0, "relevance_score": 1.0}]},  # one of two
        {"results": [{"index": 0, "relevance_score": 1.0}, {"index": 0, "relevance_score": 1.0}]},
        [],
    ],
)
def test_an_answer_without_a_score_for_each_document_is_the_servers_fault(body):
    with pytest.raises(UpstreamError, match="up answered /v1/rerank"):
        ranking.ranking(body, 2, "up", "/v1/rerank")
