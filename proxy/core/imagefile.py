"""What an image file declares, read from its structure and never decoded: its kind (told by
its bytes, not by what the client called it), the largest picture it declares, and whether it
is whole. Pure: ``struct`` and checksums over the bytes; nothing is inflated, no pixel made.

A few bytes can declare a picture of gigabytes, which any decoder builds in full before it
finds the data missing: the caller weighs the pixels declared against its bound. Whole means
every piece of the file is there, within its bytes, to the piece that ends it, with the
checksums the format has (PNG's); a file of more pieces than any image has is refused at
:data:`MOST_PIECES`, before it is walked to its end. The kinds are those the servers read:
llama.cpp reads PNG, JPEG, GIF and BMP with stb_image, WebP with ffmpeg. Bytes after a
file's end marker are left unread, as those decoders leave them (a phone's motion photo
carries its video after its JPEG).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from itertools import chain

KINDS = "PNG, JPEG, GIF, WebP or BMP"
# chunks, segments or short blocks of one image: a screenshot has tens, an animated PNG two a
# frame; a GIF's data comes in blocks of 255 bytes, and only its shorter ones count
MOST_PIECES = 1 << 16

CUT_SHORT = "is not a whole image: it is cut short"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# a JPEG marker: 0xFF and its code, which is neither a stuffed 0x00, a fill 0xFF, nor a
# restart (D0-D7) within a scan's data; found by the regular expression engine, not a loop
JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn: not DHT, JPG, DAC
JPEG_SCAN, JPEG_END, JPEG_START, JPEG_TEMPORARY = 0xDA, 0xD9, 0xD8, 0x01
GIF_FULL_BLOCK = 255  # a data sub-block of this size carries its own weight in bytes
BMP_HEADERS = (12, 40, 56, 108, 124)  # the header sizes stb_image reads
BMP_DEPTHS = (1, 4, 8, 16, 24, 32)


@dataclass(frozen=True)
class Declared:
    """An image's media type and the largest picture it declares (of its frames, canvas or
    screen), in pixels."""

    media_type: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


class Refused(ValueError):
    """Bytes that are not a whole image of a kind the servers read; the message ends a
    sentence that begins with the field's name."""


def declared(raw: bytes) -> Declared:
    """What ``raw`` declares, once its structure is found whole."""
    if raw.startswith(PNG_SIGNATURE):
        found = _png(raw)
    elif raw.startswith(b"\xff\xd8"):
        found = _jpeg(raw)
    elif raw.startswith((b"GIF87a", b"GIF89a")):
        found = _gif(raw)
    elif raw.startswith(b"RIFF") and raw[8:12] == b"WEBP":
        found = _webp(raw)
    elif raw.startswith(b"BM"):
        found = _bmp(raw)
    else:
        raise Refused(f"is not an image the models read ({KINDS})")
    if not found.pixels:
        raise _damaged("it declares no pixels")
    return found


def _png(raw: bytes) -> Declared:
    """Chunks from IHDR to IEND, each with its checksum (over the bytes as they are)."""
    view = memoryview(raw)  # checksums over slices of it copy nothing
    at, chunks, width, height, pictured = len(PNG_SIGNATURE), 0, 0, 0, False
    while True:
        length, kind = _unpack(">I4s", raw, at)
        end = at + 12 + length
        if end > len(raw):
            raise Refused(CUT_SHORT)
        if length >= 1 << 31 or not kind.isalpha():
            raise _damaged("a chunk's header is not one")
        if zlib.crc32(view[at + 4 : end - 4]) != _unpack(">I", raw, end - 4)[0]:
            raise _damaged(f"its {kind.decode()} chunk's checksum is wrong")
        if not chunks:
            if kind != b"IHDR" or length != 13:
                raise _damaged("it does not begin with its header (IHDR)")
            width, height, depth, color, compression, filtering, interlace = _unpack(
                ">IIBBBBB", raw, at + 8
            )
            if (
                depth not in PNG_DEPTHS.get(color, ())
                or compression
                or filtering
                or interlace > 1
                or max(width, height) >= 1 << 31
            ):
                raise _damaged("its header (IHDR) holds values no PNG has")
        pictured = pictured or kind == b"IDAT"
        if kind == b"IEND":
            break
        chunks += 1
        if chunks > MOST_PIECES:
            raise _crowded("chunks")
        at = end
    if not pictured:
        raise _damaged("it holds no image data (IDAT)")
    return Declared("image/png", width, height)


def _jpeg(raw: bytes) -> Declared:
    """Segments from SOI to EOI: a frame header (SOFn) for the size, then a scan."""
    at, markers, size, framed, scanned = 2, 0, (0, 0), False, False
    while True:
        marker = JPEG_MARKER.search(raw, at)
        if marker is None:
            raise Refused(CUT_SHORT)
        code, at = raw[marker.end() - 1], marker.end()
        markers += 1
        if markers > MOST_PIECES:
            raise _crowded("segments")
        if code == JPEG_END:
            break
        if code == JPEG_TEMPORARY:
            continue
        if code == JPEG_START:
            raise _damaged("it starts again within itself")
        (length,) = _unpack(">H", raw, at)
        if length < 2:
            raise _damaged("a segment is shorter than its header")
        if at + length > len(raw):
            raise Refused(CUT_SHORT)
        if code in JPEG_FRAMES:
            if length < 8:
                raise _damaged("its frame header is shorter than one")
            height, width = _unpack(">HH", raw, at + 3)
            size, framed = max(size, (width, height), key=_area), True
        elif code == JPEG_SCAN:
            if not framed:
                raise _damaged("a scan comes before its frame header")
            scanned = True
        at += length
    if not scanned:
        raise _damaged("it holds no scan")
    return Declared("image/jpeg", *size)


def _gif(raw: bytes) -> Declared:
    """The logical screen, then extensions and images, each with its data sub-blocks, up to
    the trailer. Only short sub-blocks count against the bound: full ones cost their bytes."""
    width, height, flags = _unpack("<HHB", raw, 6)
    at, pieces, size, pictures = 13 + _gif_table(flags), 0, (width, height), 0
    while at != len(raw):  # to the trailer; old encoders leave it out after the last block
        block = _byte(raw, at)
        if block == 0x3B:
            break
        if block == 0x21:  # an extension: its label, then its sub-blocks
            at += 2
        elif block == 0x2C:  # an image: its descriptor, color table and LZW code size
            _, _, width, height, flags = _unpack("<HHHHB", raw, at + 1)
            size = max(size, (width, height), key=_area)
            at += 10 + _gif_table(flags) + 1
            pictures += 1
        else:
            raise _damaged("a block is of no kind GIF has")
        pieces += 1
        while True:
            length = _byte(raw, at)
            at += 1 + length
            if 0 < length < GIF_FULL_BLOCK:
                pieces += 1
                if pieces > MOST_PIECES:
                    raise _crowded("blocks")
            if not length:
                break
    if not pictures:
        raise _damaged("it holds no image")
    return Declared("image/gif", *size)


def _gif_table(flags: int) -> int:
    """Bytes of the color table a GIF screen or image descriptor's ``flags`` announce."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _webp(raw: bytes) -> Declared:
    """A RIFF container of exactly its bytes: a bitstream (VP8, VP8L) or a canvas (VP8X)
    first, then its chunks; an animation's frames (ANMF) hold chunks of their own."""
    (length,) = _unpack("<I", raw, 4)
    if length + 8 > len(raw):
        raise Refused(CUT_SHORT)
    if length + 8 < len(raw):
        raise _damaged("its header says it is shorter than it is")
    sizes, pieces, pictures = [], 0, 0
    for chunk in _riff_chunks(raw, 12, len(raw)):
        if not pieces and chunk[0] not in (b"VP8 ", b"VP8L", b"VP8X"):
            raise _damaged("it does not begin with a picture or its canvas")
        frame = _riff_chunks(raw, chunk[1] + 16, chunk[2]) if chunk[0] == b"ANMF" else ()
        for kind, start, end in chain((chunk,), frame):  # a frame's chunks one by one too
            pieces += 1
            if pieces > MOST_PIECES:
                raise _crowded("chunks")
            size = _webp_size(raw, kind, start, end)
            if size:
                sizes.append(size)
                pictures += kind != b"VP8X"
    if not pictures:
        raise _damaged("it holds no picture")
    return Declared("image/webp", *max(sizes, key=_area))


def _riff_chunks(raw: bytes, at: int, end: int):
    """``(kind, start, end)`` of each chunk from ``at`` to ``end`` (each padded to even)."""
    while at < end:
        kind, length = _unpack("<4sI", raw, at)
        if at + 8 + length > end:
            raise Refused(CUT_SHORT)
        yield kind, at + 8, at + 8 + length
        at += 8 + length + (length & 1)


def _webp_size(raw: bytes, kind: bytes, start: int, end: int):
    """The picture a WebP chunk declares: a canvas, a frame or a bitstream; else None."""
    if end - start < {b"VP8 ": 10, b"VP8L": 5, b"VP8X": 10, b"ANMF": 16}.get(kind, 0):
        raise _damaged(f"its {kind.decode().strip()} chunk is shorter than its header")
    if kind == b"VP8X":
        return _uint24(raw, start + 4) + 1, _uint24(raw, start + 7) + 1
    if kind == b"ANMF":
        return _uint24(raw, start + 6) + 1, _uint24(raw, start + 9) + 1
    if kind == b"VP8L":
        if raw[start] != 0x2F:
            raise _damaged("its lossless bitstream has no signature")
        (bits,) = _unpack("<I", raw, start + 1)
        if bits >> 29:
            raise _damaged("its lossless bitstream is of an unknown version")
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    if kind == b"VP8 ":
        frame = _uint24(raw, start)
        if frame & 1 or raw[start + 3 : start + 6] != b"\x9d\x01\x2a":
            raise _damaged("its lossy bitstream does not begin with a key frame")
        if frame >> 5 > end - start - 10:
            raise _damaged("its lossy bitstream's first part is longer than its chunk")
        width, height = _unpack("<HH", raw, start + 6)
        return width & 0x3FFF, height & 0x3FFF
    return None


def _bmp(raw: bytes) -> Declared:
    """File and bitmap headers the servers read, and as many pixel bytes as they declare.
    The file size the header gives is not weighed: writers get it wrong (or leave it 0)."""
    start, header = _unpack("<II", raw, 10)
    if header not in BMP_HEADERS:
        raise _unread_bmp(f"a bitmap header of {header} bytes")
    if header == 12:  # OS/2's
        width, height, planes, depth = _unpack("<HHHH", raw, 18)
        compression = 0
    else:
        width, height, planes, depth, compression = _unpack("<iiHHI", raw, 18)
    if compression in (1, 2):
        raise _unread_bmp("run-length compressed")
    if compression in (4, 5):
        raise _unread_bmp("holding a JPEG or a PNG")
    if (
        planes != 1
        or depth not in BMP_DEPTHS
        or width < 0
        or compression not in (0, 3, 6)
        or (compression and depth not in (16, 32))
    ):
        raise _damaged("its bitmap header holds values no BMP the models read has")
    if start < 14 + header:
        raise _damaged("its pixels begin within its headers")
    row = (width * depth + 31) // 32 * 4
    if start + row * abs(height) > len(raw):
        raise Refused(CUT_SHORT)
    return Declared("image/bmp", width, abs(height))


def _unpack(layout: str, raw: bytes, at: int) -> tuple:
    """The values ``layout`` reads at ``at``; a file that ends before them is cut short."""
    try:
        return struct.unpack_from(layout, raw, at)
    except struct.error:
        raise Refused(CUT_SHORT) from None


def _byte(raw: bytes, at: int) -> int:
    if at >= len(raw):
        raise Refused(CUT_SHORT)
    return raw[at]


def _uint24(raw: bytes, at: int) -> int:
    low, high = _unpack("<HB", raw, at)
    return low | high << 16


def _area(size: tuple) -> int:
    return size[0] * size[1]


def _damaged(what: str) -> Refused:
    return Refused(f"is not a whole image: its data is damaged ({what})")


def _crowded(pieces: str) -> Refused:
    return Refused(f"has more {pieces} than an image may have (over {MOST_PIECES})")


def _unread_bmp(what: str) -> Refused:
    return Refused(f"is a BMP of a kind the models do not read ({what})")
