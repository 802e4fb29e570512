"""Reranking, for retrieval apps: ``POST /v1/rerank`` (Jina's and Cohere's v1 path), ``/rerank``
and ``/v2/rerank`` (Cohere's v2), routed by ``model`` to a server started with
``--reranking``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from proxy.access import holds
from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.requestmodel import answer_name
from proxy.api.serve import caller, hold_budget
from proxy.api.state import Routes, get_state
from proxy.dialects import rerank

bp = Blueprint("rerank", __name__)
routes = Routes(bp, "Reranking documents against a query (Jina, Cohere, TEI)", rerank.error_body)


@bp.post("/v1/rerank")
@bp.post("/rerank")
@bp.post("/v2/rerank")
def rerank_documents() -> Response:
    state = get_state()
    wanted = rerank.parse(read_json(), state.limits)

    def bounds() -> tuple:
        query = holds.texts_bound([wanted.query], 4)  # each pair: the query, a document, marks
        return len(wanted.documents) * query + holds.texts_bound(wanted.documents, 0), 0

    hold_budget(bounds)
    ranking = state.router.rerank(wanted.query, wanted.documents, wanted.model, caller())
    this_call().measure.add_tokens(ranking.prompt_tokens, 0, 0)
    version = "2" if request.path.startswith("/v2/") else "1"
    return jsonify(rerank.render(wanted, ranking, answer_name(), version))
