"""Images as clients send them (data URIs, bare base64, fetched bytes), checked to be whole
images of a kind the servers read and within the operator's size limit, so that a bad one is
a 400 naming its field rather than a server's error. Pure: text and bytes in, values out.

Pillow reads the bytes: it tells a PNG from a text file by what they are, not by what the
client called them, and finds one cut short (a PNG by its chunks' checksums, in a
millisecond for a screenshot; other kinds by decoding them).
"""
from __future__ import annotations

import base64
import binascii
import io
from dataclasses import replace
from typing import Iterator, Sequence, Union

from PIL import Image as Picture
from PIL import UnidentifiedImageError

from proxy.core.errors import InvalidRequestError
from proxy.core.types import Image, Message

# what llama.cpp's image loader reads, by Pillow's name for each
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif",
               "WEBP": "image/webp", "BMP": "image/bmp"}
KINDS = "PNG, JPEG, GIF, WebP or BMP"


def from_data_uri(uri: str, field: str, limit: int, at: int = 0) -> Image:
    """The image of a ``data:image/…;base64,…`` URI."""
    header, comma, payload = uri.partition(",")
    if not comma or not header.startswith("data:"):
        raise _fail(field, "must be a data URI (data:image/png;base64,…)")
    media_type, _, encoding = header[len("data:"):].partition(";")
    if not media_type.startswith("image/"):
        raise _fail(field, f"is a data URI of {media_type or 'text/plain'}, not of an image")
    if encoding != "base64":
        raise _fail(field, "must be base64 (data:image/png;base64,…)")
    return from_base64(payload, field, limit, at)


def from_base64(text: str, field: str, limit: int, at: int = 0) -> Image:
    """The image whose bytes ``text`` holds in base64."""
    if len(text) > _base64_length(limit):
        raise _too_large(field, limit)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(field, "is not base64 text, or is cut short") from None
    return Image(field, at, checked(raw, field, limit), text)


def from_bytes(raw: bytes, field: str, limit: int, at: int = 0) -> Image:
    """The image of bytes the proxy fetched."""
    media_type = checked(raw, field, limit)
    return Image(field, at, media_type, base64.b64encode(raw).decode("ascii"))


def checked(raw: bytes, field: str, limit: int) -> str:
    """The media type of ``raw``, a whole image of a kind the servers read."""
    if len(raw) > limit:
        raise _too_large(field, limit)
    try:
        with Picture.open(io.BytesIO(raw), formats=tuple(MEDIA_TYPES)) as picture:
            kind = picture.format
            if kind == "PNG":  # its chunks' checksums find damage without inflating pixels
                picture.verify()
            else:
                picture.load()
    except Picture.DecompressionBombError:
        raise _fail(field, "has more pixels than an image may have") from None
    except UnidentifiedImageError:
        raise _fail(field, f"is not an image the models read ({KINDS})") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise _fail(field, "is not a whole image: its data is cut short or damaged") from None
    return MEDIA_TYPES[kind]


def pieces(message: Message) -> Iterator[Union[str, Image]]:
    """The message's text pieces and images in their order (an empty text only when that is
    all it holds)."""
    start = 0
    for image in sorted(message.images, key=lambda image: image.at):
        if image.at > start:
            yield message.content[start:image.at]
            start = image.at
        yield image
    if start < len(message.content) or not message.images:
        yield message.content[start:]


def marked(messages: Sequence[Message], marker: str) -> tuple:
    """``messages`` with each image's place in their text taken by ``marker`` (the server's
    own, where it puts the images it is sent beside a prompt)."""
    return tuple(replace(message, content="".join(
        piece if isinstance(piece, str) else marker for piece in pieces(message)), images=())
        if message.images else message for message in messages)


def unseen(image: Image, model: str, why: str) -> InvalidRequestError:
    """The error of an image sent to a model that cannot see it, and ``why`` not."""
    return _fail(image.field, f"is an image, and the model '{model}' cannot see images: {why}")


def _base64_length(limit: int) -> int:
    return 4 * -(-limit // 3)


def _too_large(field: str, limit: int) -> InvalidRequestError:
    return _fail(field, f"is larger than the {limit} bytes an image may be")


def _fail(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{field}' {message}", param=field)
