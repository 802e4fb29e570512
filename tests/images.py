"""Small real images, made with Pillow, for the tests that send one; and crafted ones whose
headers declare what their few bytes do not hold (bombs: a decoder would build every pixel
they declare)."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib

from PIL import Image


def picture(kind: str = "PNG", size: tuple = (32, 32), color: tuple = (200, 40, 40)) -> bytes:
    """The bytes of a one-color image of ``kind`` (a Pillow format name)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, kind)
    return buffer.getvalue()


def noise(size: tuple = (128, 128)) -> bytes:
    """A PNG that does not compress: random pixels."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, and whose data holds none."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: its length, kind, data and checksum."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_empty_chunks(count: int) -> bytes:
    """A small PNG with ``count`` empty chunks of a private kind after its header: each is
    valid and means nothing."""
    raw = picture()
    header_end = 8 + 25  # the signature, then IHDR's length, kind, 13 bytes and checksum
    return raw[:header_end] + chunk(b"nuLl", b"") * count + raw[header_end:]


def lossless_webp(width: int, height: int) -> bytes:
    """A lossless WebP of ``width`` x ``height`` pixels, all one color, in a few bytes: each
    of its five prefix codes has a single symbol, so a pixel takes no bits at all."""
    fields = [
        (0x2F, 8),
        (width - 1, 14),
        (height - 1, 14),
        (0, 1),
        (0, 3),  # signature, size
        (0, 1),
        (0, 1),
        (0, 1),
    ]  # no transform, no color cache, no meta prefix codes
    fields += [(1, 1), (0, 1), (0, 1), (0, 1)] * 5  # simple codes of one 1-bit symbol, 0
    value = length = 0
    for field, bits in fields:
        value |= field << length
        length += bits
    data = value.to_bytes((length + 7) // 8, "little")
    data += bytes(len(data) % 2)
    body = b"VP8L" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def rle_bmp(width: int, height: int) -> bytes:
    """An 8-bit run-length BMP of ``width`` x ``height`` pixels of one color: two bytes
    for every 255 pixels."""
    row = b"\xff\x01" * (width // 255) + bytes([width % 255, 1]) + b"\x00\x00"
    pixels = row * height + b"\x00\x01"  # each row ends with 0 0, the bitmap with 0 1
    start = 14 + 40 + 256 * 4
    return (
        b"BM"
        + struct.pack("<IHHI", start + len(pixels), 0, 0, start)
        + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
        + bytes(256 * 4)
        + pixels
    )


def base64_of(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def data_uri(raw: bytes = b"", media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64_of(raw or picture())}"
