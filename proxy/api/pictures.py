"""OpenAI's image routes, with and without ``/v1``: pictures drawn from a prompt, and edits of
pictures the client uploads, each by the model it names (see :mod:`proxy.dialects.pictures`).

An edit's pictures are read within ``--max-image-size`` each before anything else. The
engine's answer goes back as it wrote it, its tokens charged to the key where the engine
counted them. A key with budgets is refused these routes: what a picture costs is not yet
held before the work.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.serve import caller, versioned
from proxy.api.state import Routes, get_state
from proxy.core.audio import Upload
from proxy.core.errors import InvalidRequestError
from proxy.core.pictures import Drawing
from proxy.dialects import pictures

bp = Blueprint("pictures", __name__)
routes = Routes(bp, "Pictures: drawn from a prompt, and edits of uploaded pictures")


@versioned(bp, "/images/generations")
def generate() -> Response:
    return _drawn(pictures.parse_generation(read_json(), get_state().limits))


@versioned(bp, "/images/edits")
def edit() -> Response:
    form = read_json()
    if not isinstance(form, dict) or not request.files:
        raise InvalidRequestError(
            "the body must be a multipart form with the pictures to edit as its files",
            param="image",
        )
    limits = get_state().limits
    return _drawn(pictures.parse_edit(form, _uploads(limits.max_image_size), limits))


def _drawn(asked: Drawing) -> Response:
    if this_call().budget is not None:
        raise InvalidRequestError(
            "the image routes are not served to a key with budgets: what a picture costs is "
            "not yet held before the work",
            param="model",
        )
    drawn = get_state().router.draw(asked, caller())
    usage = drawn.usage
    if usage is not None:
        this_call().measure.add_tokens(usage.prompt_tokens, usage.completion_tokens, 0)
    return Response(drawn.content, content_type="application/json")


def _uploads(most: int) -> list:
    """The form's pictures as ``(field, upload)`` in the order they came, each read up to
    one byte past ``most`` (enough to refuse it)."""
    return [
        (name, Upload(sent.filename or "image", sent.mimetype or "", sent.stream.read(most + 1)))
        for name in pictures.UPLOADED
        for sent in request.files.getlist(name)
    ]
