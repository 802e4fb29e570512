"""Routes for people and monitors rather than OpenAI clients."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from proxy.app import get_state

bp = Blueprint("web", __name__)


@bp.get("/health")
def health() -> Response:
    """200 when the upstream answers and is ready, 503 otherwise; never needs a key."""
    report = get_state().backend.health()
    body = {"status": "ok" if report.ok else "unavailable", "backend": report.backend,
            **report.detail}
    response = jsonify(body)
    response.status_code = 200 if report.ok else 503
    return response
