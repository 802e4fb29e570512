"""Reranking on a llama-server started with ``--reranking``: ``POST /v1/rerank``.

The server scores every document (its answer sorted, most relevant first); the proxy asks for
all of them and cuts, orders and dresses the list for its client itself, so that every
client's options mean the same whichever server answers.
"""

from __future__ import annotations

from typing import Sequence

from proxy.core.errors import UpstreamError
from proxy.core.types import Ranking

PATH = "/v1/rerank"
PROBE_PATH = "/rerank"  # older servers know only this one
PROBE = {}  # a reranker asks for its query (400), any other server says it does not rerank


def payload(query: str, documents: Sequence[str]) -> dict:
    return {"query": query, "documents": list(documents), "top_n": len(documents)}


def ranking(body: object, count: int, label: str) -> Ranking:
    """The server's answer, checked: one score for each of ``count`` documents."""
    results = body.get("results") if isinstance(body, dict) else None
    try:
        scores = tuple((int(item["index"]), float(item["relevance_score"])) for item in results)
    except (TypeError, KeyError, ValueError):
        raise UpstreamError(f"{label} answered /v1/rerank without scores") from None
    if sorted(index for index, _ in scores) != list(range(count)):
        raise UpstreamError(f"{label} answered /v1/rerank with scores for other documents")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    tokens = usage.get("prompt_tokens")
    return Ranking(
        tuple(sorted(scores, key=lambda pair: (-pair[1], pair[0]))),
        tokens if isinstance(tokens, int) and tokens >= 0 else 0,
    )
