"""Routes for people and monitors rather than OpenAI clients."""

from __future__ import annotations

from time import time

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from proxy.api.auth import presented_key
from proxy.api.state import Routes, endpoints, get_state
from proxy.inspector.visibility import Viewer, health_seen, seen, viewer
from proxy.ops.metrics import Summed

bp = Blueprint("web", __name__)
routes = Routes(bp, "For people and monitors: the fleet page, its figures, health and a playground")


@bp.route("/", methods=["GET", "HEAD"])
def index():
    """The fleet page: the models and replicas its viewer may see (:mod:`~proxy.access.
    visibility`), kept fresh from ``/status`` with the key the page was given; with no
    script it still shows the state at load time. A client that does not ask for a page by
    name (``Accept: text/html``, as browsers do) is told, as Ollama tells the clients that
    check ``/``, that the API is running."""
    if not any(kind == "text/html" for kind, _ in request.accept_mimetypes):
        return Response("Ollama is running", mimetype="text/plain")
    state = get_state()
    listed = endpoints(current_app.url_map.iter_rules(), current_app.extensions["routes"])
    return render_template(
        "index.html",
        endpoints=listed,
        status=seen(fleet_status(), _viewer()),
        key_required=state.access.required,
        charts=state.history is not None,
        base_url=request.host_url,
    )


@bp.get("/playground")
def playground() -> str:
    """Chat with any model from a browser; the key, when one is needed, stays in the tab."""
    return render_template("playground.html", key_required=get_state().access.required)


@bp.get("/status")
def status() -> Response:
    """What the fleet page shows, as JSON, as far as its viewer may see it: models,
    replicas, queues, servers, tokens so far, each model's last minutes (``history``, empty
    with metrics off), the proxy's clock (``time``, unix seconds, as the history's are) and
    who it was shown to (``viewer``)."""
    return jsonify(seen(fleet_status(), _viewer()))


def fleet_status() -> dict:
    """Each model and replica as this process knows it; with metrics on, the tokens, the
    queues and the history are every worker's, added up (under gunicorn, the answering worker
    alone holds a share of them)."""
    state = get_state()
    summed = state.metrics.summed() if state.metrics is not None else Summed({}, {}, {})
    models = []
    for model in state.router.status(checked=True):
        label = model["label"]
        for replica in model["replicas"]:
            replica["busy"], replica["queued"] = summed.queues.get(
                (label, replica["url"]), (replica["busy"], replica["queued"])
            )
        models.append({**model, "completion_tokens": summed.tokens.get((label, "completion"), 0)})
    ok = all(any(r["ok"] for r in m["replicas"]) for m in models)
    history = state.history.series() if state.history is not None else {}
    return {
        "ok": ok,
        "key_required": state.access.required,
        "models": models,
        "history": history,
        "batches": state.live_batches(),
        "time": time(),
    }


@bp.get("/health")
def health() -> Response:
    """200 when the upstream answers and is ready, 503 otherwise; never needs a key, and
    tells only that without the admin key."""
    report = get_state().router.check()
    body = {
        "status": "ok" if report.ok else "unavailable",
        "backend": report.backend,
        **report.detail,
    }
    response = jsonify(health_seen(body, _viewer()))
    response.status_code = 200 if report.ok else 503
    return response


def _viewer() -> Viewer:
    """Who asks: the admin, a client key's holder or anonymous, by the bearer token (or
    ``x-api-key``) the request presents; a key the proxy does not know is no key."""
    access = get_state().access
    token = presented_key(request.environ)
    return viewer(
        admin=access.is_admin(token), key=access.find(token), keys_required=access.required
    )
