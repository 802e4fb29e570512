"""Vertex AI's prediction route, for a gateway a Vertex AI endpoint runs as its container:
each instance is served in process as a request of its own API (:mod:`proxy.api.inprocess`),
as the key that sent the predictions, with its grants, limits, budgets, turn and usage. The
first instance that fails is the answer."""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, current_app, jsonify

from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.inprocess import serve_in_process
from proxy.api.state import Routes, get_state
from proxy.dialects import vertex

bp = Blueprint("vertex", __name__)
routes = Routes(bp, "Vertex AI's predictions, each instance a chat completion")


@bp.post("/predict")
def predict() -> Response:
    asked = vertex.instances(read_json(), get_state().limits)
    app, call = current_app._get_current_object(), this_call()
    context = {} if call.trace is None else call.trace.headers()  # each part under this one
    answers = []
    for index, (path, body) in enumerate(asked):
        charge = "predict_" + secrets.token_hex(16)
        answer = serve_in_process(app, call.key, path, body, 0, charge, lowest=False,
                                  trace_context=context)  # fmt: skip
        if answer.status >= 400:
            response = jsonify(vertex.placed(answer.body, index))
            response.status_code = answer.status
            return response
        answers.append(answer.body)
    return jsonify(vertex.predictions(answers))
