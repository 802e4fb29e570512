"""Small real images, made with Pillow, for the tests that send one."""
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
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def base64_of(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def data_uri(raw: bytes = b"", media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64_of(raw or picture())}"
