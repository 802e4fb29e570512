"""Reranking (``POST /v1/rerank``, ``/rerank``, ``/v2/rerank``), both ways, in the shape both
Jina's and Cohere's clients read: ``model``, ``query``, ``documents`` (strings, or objects
with ``text``), ``top_n``, ``return_documents`` (true unless false) in; ``results`` of
``index``, ``relevance_score`` and ``document``, the most relevant first, with ``usage``
(Jina's) and ``meta`` (Cohere's) out.

A body with ``texts`` instead of ``documents`` is Hugging Face TEI's (``return_text`` false
unless true), answered as TEI's clients read it: a bare list of ``index``, ``score`` and
``text``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from proxy.core.answers import Ranking
from proxy.core.errors import ProxyError
from proxy.core.fields import Fields
from proxy.dialects.dialect import Limits
from proxy.dialects.openai import answer as openai


@dataclass(frozen=True)
class RerankRequest:
    """Documents to rank by their relevance to a query, and what the answer holds."""

    model: Optional[str]
    query: str
    documents: tuple
    top_n: Optional[int] = None  # None: every document
    return_documents: bool = True
    tei: bool = False  # asked and answered in Hugging Face TEI's shape


def parse(body: Any, limits: Limits = Limits()) -> RerankRequest:
    fields = Fields(body)
    query = fields.string("query")
    if not query:
        raise fields.fail("query", "is required: the text to rank the documents by")
    tei = "documents" not in fields.body and "texts" in fields.body
    name = "texts" if tei else "documents"
    raw = fields.raw(name)
    if not isinstance(raw, list) or not raw:
        raise fields.fail(name, 'must be a non-empty list of strings or {"text": …} objects')
    if len(raw) > limits.max_batch:
        raise fields.fail(name, f"may hold at most {limits.max_batch} documents, got {len(raw)}")
    documents = tuple(_document(item, f"{name}[{i}]") for i, item in enumerate(raw))
    returned = fields.boolean("return_text" if tei else "return_documents")
    return RerankRequest(
        fields.string("model") or None,
        query,
        documents,
        fields.integer("top_n", 1),
        returned is True if tei else returned is not False,
        tei,
    )


def _document(item: Any, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        text = Fields(item, where + ".").string("text")
        if text is not None:
            return text
    raise Fields({}, where + ".").fail(
        "text", "is required: a document is a string or an object with its text"
    )


def render(request: RerankRequest, ranking: Ranking, model: str, version: str = "1"):
    """The answer: ``version`` is the API's, as Cohere's ``meta`` gives it."""
    ranked = ranking.scores[: request.top_n]
    if request.tei:
        return [
            {
                "index": index,
                "score": score,
                **({"text": request.documents[index]} if request.return_documents else {}),
            }
            for index, score in ranked
        ]
    results = [
        {
            "index": index,
            "relevance_score": score,
            **(
                {"document": {"text": request.documents[index]}} if request.return_documents else {}
            ),
        }
        for index, score in ranked
    ]
    tokens = ranking.prompt_tokens
    return {
        "id": new_id(),
        "model": model,
        "results": results,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}},
    }


def new_id() -> str:
    return f"rerank-{os.urandom(12).hex()}"


def error_body(error: ProxyError) -> dict:
    """An error as Cohere's clients read one (``message``), and OpenAI's (``error``)."""
    return {"message": error.message, **openai.error_body(error)}
