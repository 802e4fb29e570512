"""llama.cpp's own API where editors call it: ``POST /infill`` (llama.vim, llama.vscode),
routed by ``model`` and served on every backend (see :mod:`proxy.dialects.infill`)."""

from __future__ import annotations

from flask import Blueprint, Response

from proxy.api.serve import asked, serve
from proxy.api.state import Routes
from proxy.dialects import infill

bp = Blueprint("llamacpp", __name__)
routes = Routes(
    bp, "llama.cpp's fill-in-the-middle for editors (llama.vim, llama.vscode)", infill.error_body
)


@bp.post("/infill")
def fill() -> Response:
    return serve(infill, asked(infill))
