"""llama.cpp's own API, for models on a server.cpp: ``POST /completion``, passed verbatim to
the model's server and its answer back as the server wrote it (see
:mod:`proxy.dialects.native`), and the server's routes that are not a generation (its
properties, slots, tokens and template), passed on and answered as the server answers them.

The model is the one the body names (``model``), or for a ``GET`` the query's, else the
default. ``/props`` names the model's file, never where it lies on the server's disk.
"""

from __future__ import annotations

import posixpath

from flask import Blueprint, Response, jsonify, request

from proxy.api.body import read_json
from proxy.api.serve import asked, caller, serve
from proxy.api.state import Routes, get_state
from proxy.core.fields import Fields, asked_model
from proxy.dialects import native

bp = Blueprint("native", __name__)
routes = Routes(
    bp, "llama.cpp's own API, for models on a llama.cpp or PowerInfer server", native.error_body
)


@bp.post("/completion")
def complete() -> Response:
    return serve(native, asked(native))


@bp.post("/detokenize")
@bp.post("/apply-template")
@bp.post("/chat/completions/input_tokens")
def post() -> Response:
    return passed(request.path, read_json())


@bp.get("/props")
@bp.get("/slots")
def get() -> Response:
    status, body = get_state().router.ask_native(
        request.path, None, request.args.get("model"), caller()
    )
    if (
        request.path == "/props"
        and isinstance(body, dict)
        and isinstance(body.get("model_path"), str)
    ):
        body["model_path"] = posixpath.basename(body["model_path"].replace("\\", "/"))
    return _answer(status, body)


def passed(path: str, body: object) -> Response:
    """``body`` posted at ``path`` of the model's server, and its answer."""
    Fields(body)  # a 400 unless it is an object
    status, answer = get_state().router.ask_native(path, body, asked_model(body), caller())
    return _answer(status, answer)


def _answer(status: int, body: object) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
