"""OpenAI's image API: a generation (a JSON body with a prompt) and an edit (a multipart
form with the pictures to change, and a mask). Pure.

What the proxy reads it checks before any work, and refuses by name: the prompt within the
API's length, ``n`` within its bound, a ``size`` of at most ``--max-image-pixels``, the
answer's format one the API defines, each uploaded picture a whole image of a kind the
engines read within ``--max-image-size``. A streamed answer is refused: pictures are answered
whole. Every other field goes to the engine as the client wrote it.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from proxy.core import images
from proxy.core.fields import Fields
from proxy.core.pictures import ANSWER_FORMATS, LONGEST_PROMPT, MOST_PICTURES, MOST_UPLOADS, Drawing
from proxy.dialects.dialect import Limits

SIZE = re.compile(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})")
UPLOADED = ("image", "image[]", "mask")  # an edit's files: the pictures, and the mask


def parse_generation(body: Any, limits: Limits) -> Drawing:
    """A generation's body."""
    fields = Fields(body)
    return Drawing(fields.required("model"), "generations", body, (), *_checked(fields, limits))


def parse_edit(form: Mapping[str, Any], uploads: Sequence[tuple], limits: Limits) -> Drawing:
    """An edit's form and its files (``(field, upload)``), each picture checked before it
    goes anywhere."""
    fields = Fields(dict(form))
    pictures = [(name, upload) for name, upload in uploads if name != "mask"]
    if not pictures:
        raise fields.fail("image", "is required: the picture to edit, as a form's file")
    if len(pictures) > MOST_UPLOADS:
        raise fields.fail("image", f"may be at most {MOST_UPLOADS} pictures")
    if sum(name == "mask" for name, _ in uploads) > 1:
        raise fields.fail("mask", "may be one picture")
    for upload, field in _named(uploads):
        images.checked(upload.data, field, limits.image)
    return Drawing(fields.required("model"), "edits", dict(form), tuple(uploads),
                   *_checked(fields, limits))  # fmt: skip


def _checked(fields: Fields, limits: Limits) -> tuple:
    """Check what the proxy reads of a drawing; ``(n, pixels)``: how many pictures it asks
    for, and the pixels of each its size asks (0: none, or ``auto``)."""
    prompt = fields.required("prompt")
    if len(prompt) > LONGEST_PROMPT:
        raise fields.fail("prompt", f"may hold at most {LONGEST_PROMPT} characters")
    n = _count(fields, "n")
    size, pixels = fields.string("size"), 0
    if size is not None and size != "auto":
        found = SIZE.fullmatch(size)
        if found is None:
            raise fields.fail("size", "must be WIDTHxHEIGHT in pixels (1024x1024), or auto")
        width, height = int(found[1]), int(found[2])
        pixels = width * height
        if pixels > limits.max_image_pixels:
            raise fields.fail(
                "size",
                f"is {width * height} pixels, more than a picture may have "
                f"({limits.max_image_pixels}, --max-image-pixels)",
            )
    answer = fields.string("response_format")
    if answer is not None and answer not in ANSWER_FORMATS:
        raise fields.fail("response_format", f"must be one of {', '.join(ANSWER_FORMATS)}")
    if fields.raw("stream") not in (None, False, "false"):
        raise fields.fail("stream", "is not served: pictures are answered whole")
    return n, pixels


def _count(fields: Fields, name: str) -> int:
    """A count of pictures, 1 to :data:`MOST_PICTURES`: a JSON integer, or a form's digits."""
    value = fields.raw(name)
    if value is None:
        return 1
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is not int or not 1 <= value <= MOST_PICTURES:
        raise fields.fail(name, f"must be a whole number from 1 to {MOST_PICTURES}")
    return value


def _named(uploads: Sequence[tuple]) -> list:
    """``(upload, field)`` of each upload: ``field`` names it in an error, by its place
    among those of its name where there are several (``image[1]``)."""
    names = [name for name, _ in uploads]
    seen: dict = {}
    named = []
    for name, upload in uploads:
        place = seen[name] = seen.get(name, -1) + 1
        bare = name.removesuffix("[]")
        field = name if names.count(name) == 1 else f"{bare}[{place}]"
        named.append((upload, field))
    return named
