"""Images as clients send them (data URIs, bare base64, fetched bytes), checked to be whole
images of a kind the servers read and within the operator's bounds, so that a bad one is a
400 naming its field rather than a server's error. Pure: text and bytes in, values out.

An image is judged by what its structure declares (:mod:`proxy.core.imagefile`), never
decoded: a few bytes may declare gigabytes of pixels, which a decoder, here or in the server,
would build before it found out.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from typing import Iterator, Sequence, Union

from proxy.core import imagefile
from proxy.core.errors import InvalidRequestError
from proxy.core.types import Image, Message, Sound

BASE64_PIECE = 1 << 20  # characters of base64 decoded at a time: a multiple of 4


@dataclass(frozen=True)
class Bounds:
    """How large one image may be: its bytes, and the pixels its header declares."""

    size: int
    pixels: int


def from_data_uri(uri: str, field: str, bounds: Bounds, at: int = 0) -> Image:
    """The image of a ``data:image/…;base64,…`` URI."""
    comma = uri.find(",")
    header = uri[:comma]
    if comma < 0 or not header.startswith("data:"):
        raise _fail(field, "must be a data URI (data:image/png;base64,…)")
    media_type, _, encoding = header[len("data:") :].partition(";")
    if not media_type.startswith("image/"):
        raise _fail(field, f"is a data URI of {media_type or 'text/plain'}, not of an image")
    if encoding != "base64":
        raise _fail(field, "must be base64 (data:image/png;base64,…)")
    return _read(uri, comma + 1, field, bounds, at)


def from_base64(text: str, field: str, bounds: Bounds, at: int = 0) -> Image:
    """The image whose bytes ``text`` holds in base64."""
    return _read(text, 0, field, bounds, at)


def from_bytes(raw: bytes, field: str, bounds: Bounds, at: int = 0) -> Image:
    """The image of bytes the proxy fetched."""
    media_type = checked(raw, field, bounds)
    return Image(field, at, media_type, base64.b64encode(raw).decode("ascii"))


def checked(raw: bytes, field: str, bounds: Bounds) -> str:
    """The media type of ``raw``, a whole image of a kind the servers read, within
    ``bounds``."""
    if len(raw) > bounds.size:
        raise too_large(field, bounds.size)
    try:
        found = imagefile.declared(raw)
    except imagefile.Refused as refused:
        raise _fail(field, str(refused)) from None
    if found.pixels > bounds.pixels:
        raise _fail(
            field,
            f"has more pixels than an image may have: {found.width}x"
            f"{found.height}, over {bounds.pixels}",
        )
    return found.media_type


def _read(text: str, start: int, field: str, bounds: Bounds, at: int) -> Image:
    """The image whose bytes ``text`` holds in base64 from ``start``, its base64 taken out
    of ``text`` once the image is found good."""
    media_type = _checked_base64(text, start, field, bounds)
    return Image(field, at, media_type, text[start:])


def _checked_base64(text: str, start: int, field: str, bounds: Bounds) -> str:
    """The media type of the image whose bytes ``text`` holds in base64 from ``start``."""
    if len(text) - start > _base64_length(bounds.size):
        raise too_large(field, bounds.size)
    try:
        raw = _decoded(text, start)
    except (binascii.Error, ValueError):
        raise _fail(field, "is not base64 text, or is cut short") from None
    return checked(raw, field, bounds)


def _decoded(text: str, start: int) -> bytearray:
    """The bytes ``text`` holds in base64 from ``start``, decoded a piece at a time into one
    buffer made to measure: neither the base64 nor its ASCII bytes are copied whole, nor the
    bytes grown by copies (a 20 MB image costs its 20 MB)."""
    raw = bytearray((len(text) - start) // 4 * 3)
    done = 0
    for at in range(start, len(text), BASE64_PIECE):
        piece = text[at : at + BASE64_PIECE]
        if piece.endswith("=") and at + BASE64_PIECE < len(text):  # padding within
            raise binascii.Error("padding before the end")
        decoded = base64.b64decode(piece, validate=True)
        raw[done : done + len(decoded)] = decoded
        done += len(decoded)
    del raw[done:]  # the padding's room
    return raw


def pieces(message: Message) -> Iterator[Union[str, Image, Sound]]:
    """The message's text pieces, images and sounds in their order (an empty text only when
    that is all it holds)."""
    start = 0
    media = sorted((*message.images, *message.sounds), key=lambda each: (each.at, each.order))
    for each in media:
        if each.at > start:
            yield message.content[start : each.at]
            start = each.at
        yield each
    if start < len(message.content) or not media:
        yield message.content[start:]


def media(messages: Sequence[Message]) -> list:
    """The images and sounds of ``messages``, in their order."""
    return [
        piece
        for message in messages
        if message.images or message.sounds
        for piece in pieces(message)
        if not isinstance(piece, str)
    ]


def marked(messages: Sequence[Message], marker: str) -> tuple:
    """``messages`` with each image's and sound's place in their text taken by ``marker``
    (the server's own, where it puts the media it is sent beside a prompt, in order)."""
    return tuple(
        replace(
            message,
            content="".join(
                piece if isinstance(piece, str) else marker for piece in pieces(message)
            ),
            images=(),
            sounds=(),
        )
        if message.images or message.sounds
        else message
        for message in messages
    )


def unseen(image: Image, model: str, why: str) -> InvalidRequestError:
    """The error of an image sent to a model that cannot see it, and ``why`` not."""
    return _fail(image.field, f"is an image, and the model '{model}' cannot see images: {why}")


def _base64_length(limit: int) -> int:
    return 4 * -(-limit // 3)


def too_large(field: str, limit: int) -> InvalidRequestError:
    """The error of an image of more than ``limit`` bytes."""
    return _fail(field, f"is larger than the {limit} bytes an image may be")


def _fail(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{field}' {message}", param=field)
