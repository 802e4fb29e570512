"""Reranking as llama-server (``--reranking``), vLLM and the Jina- and Cohere-style servers
take it and answer it: a query, the documents and ``top_n``; each result's ``index`` and
``relevance_score``. Pure.

The server is asked for every document's score; the proxy cuts, orders and dresses the
list for its client itself, so that every client's options mean the same whichever server
answers.
"""

from __future__ import annotations

from typing import Sequence

from proxy.core.answers import Ranking
from proxy.core.errors import UpstreamError


def payload(query: str, documents: Sequence[str]) -> dict:
    return {"query": query, "documents": list(documents), "top_n": len(documents)}


def ranking(body: object, count: int, label: str, path: str) -> Ranking:
    """The answer of ``label`` at ``path``, checked: one score for each of ``count``
    documents, and the tokens it says it read (``usage.prompt_tokens``, or Jina's
    ``total_tokens``)."""
    results = body.get("results") if isinstance(body, dict) else None
    try:
        scores = tuple((int(item["index"]), float(item["relevance_score"])) for item in results)
    except (TypeError, KeyError, ValueError):
        raise UpstreamError(f"{label} answered {path} without scores") from None
    if sorted(index for index, _ in scores) != list(range(count)):
        raise UpstreamError(f"{label} answered {path} with scores for other documents")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
    return Ranking(
        tuple(sorted(scores, key=lambda pair: (-pair[1], pair[0]))),
        tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else 0,
    )
