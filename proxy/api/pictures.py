"""OpenAI's image routes, with and without ``/v1``: pictures drawn from a prompt, and edits of
pictures the client uploads, each by the model it names (see :mod:`proxy.dialects.pictures`).

An edit's pictures are read within ``--max-image-size`` each before anything else. The
engine's answer goes back as it wrote it (with the proxy's own links, where it asked for
links and was given the pictures): its pictures counted, and its tokens where the engine
counted them, charged to the key; held before the work as the pictures asked for (at their
size's price, where the model's price names sizes), their prompt, uploads and the most
tokens a picture counts.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from flask import Blueprint, Response, request

from proxy.access import holds
from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.requestmodel import request_model
from proxy.api.serve import caller, hold_budget, versioned
from proxy.api.state import Routes, get_state
from proxy.core import pictures
from proxy.core.answers import Usage
from proxy.core.audio import Upload
from proxy.core.errors import InvalidRequestError
from proxy.core.pictures import LINKED_FOR, Drawing
from proxy.dialects import pictures as dialect
from proxy.ops.measure import priced

bp = Blueprint("pictures", __name__)
routes = Routes(bp, "Pictures: drawn from a prompt, and edits of uploaded pictures")


@versioned(bp, "/images/generations")
def generate() -> Response:
    return _drawn(dialect.parse_generation(read_json(), get_state().limits))


@versioned(bp, "/images/edits")
def edit() -> Response:
    form = read_json()
    if not isinstance(form, dict) or not request.files:
        raise InvalidRequestError(
            "the body must be a multipart form with the pictures to edit as its files",
            param="image",
        )
    limits = get_state().limits
    return _drawn(dialect.parse_edit(form, _uploads(limits.max_image_size), limits))


def _drawn(asked: Drawing) -> Response:
    call, state = this_call(), get_state()
    size = _priced_size(asked)
    hold_budget(lambda: holds.drawing_bounds(asked), size, pictures=asked.n)
    files = state.pictures if asked.fields.get("response_format") == "url" else None
    if files is not None:
        with _linking():
            files.picture_room(call.maker, asked.n)
    drawn = state.router.draw(asked, caller())
    usage = drawn.usage or Usage(0, 0)
    made = priced(pictures=pictures.count(drawn.content))
    call.measure.add_tokens(usage.prompt_tokens, usage.completion_tokens, 0, priced=made,
                            size=size)  # fmt: skip
    content = drawn.content
    kept = pictures.unlinked(content) if files is not None else None
    if kept is not None:  # asked for links, and given the pictures: kept for the key
        with _linking():
            ids = files.keep_pictures(call.maker, kept, LINKED_FOR)
        content = pictures.linked(
            content, [f"{request.host_url}v1/files/{id}/content" for id in ids]
        )
    return Response(content, content_type="application/json")


def _priced_size(asked: Drawing) -> str:
    """The size the pictures are priced at, where the model's price names sizes ("": it
    names none); one it does not name, or none asked, refused by name before any work."""
    price = get_state().router.held_price(request_model(), this_call().body)
    if price is None or not price.image_sizes:
        return ""
    size = asked.fields.get("size")
    why = price.size_refusal(size)
    if why is not None:
        raise InvalidRequestError(f"size {why}", param="size")
    return size


@contextlib.contextmanager
def _linking() -> Iterator[None]:
    """A key that cannot keep the pictures it asks links to is told so, naming the field."""
    try:
        yield
    except InvalidRequestError as exc:
        raise InvalidRequestError(
            f"response_format 'url' keeps the pictures as the key's files, and {exc.message}; "
            "or ask for b64_json",
            param="response_format",
        ) from None


def _uploads(most: int) -> list:
    """The form's pictures as ``(field, upload)`` in the order they came, each read up to
    one byte past ``most`` (enough to refuse it)."""
    return [
        (name, Upload(sent.filename or "image", sent.mimetype or "", sent.stream.read(most + 1)))
        for name in dialect.UPLOADED
        for sent in request.files.getlist(name)
    ]
