"""What an image file declares, read from its structure: real images of every kind and
flavour the servers read, and crafted ones that declare far more than they hold, are cut
short, damaged, or made of more pieces than any image has."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image as Picture

from proxy.core import imagefile
from proxy.core.imagefile import Declared
from tests.images import chunk, claiming, lossless_webp, noise, picture, rle_bmp

MANY = imagefile.MOST_PIECES + 1


def saved(kind: str, size: tuple = (40, 30), mode: str = "RGB", **options) -> bytes:
    """An image Pillow writes, of several frames when ``save_all`` is given."""
    buffer = io.BytesIO()
    frames = [Picture.new(mode, size, color) for color in (10, 120, 240)]
    if options.get("save_all"):
        options["append_images"] = frames[1:]
    frames[0].save(buffer, kind, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "raw, media_type",
    [
        pytest.param(saved(kind, mode=mode), media_type, id=f"{kind}-{mode}")
        for kind, media_type in [
            ("PNG", "image/png"),
            ("JPEG", "image/jpeg"),
            ("GIF", "image/gif"),
            ("WEBP", "image/webp"),
            ("BMP", "image/bmp"),
        ]
        for mode in ("RGB", "L", "1") + (("RGBA", "P") if kind != "JPEG" else ())
    ]
    + [
        pytest.param(saved("PNG", interlace=1), "image/png", id="png-interlaced"),
        pytest.param(saved("PNG", mode="I;16"), "image/png", id="png-16-bit"),
        pytest.param(saved("PNG", save_all=True), "image/png", id="png-animated"),
        pytest.param(noise((40, 30)), "image/png", id="png-noise"),
        pytest.param(saved("PNG") + b"trailing", "image/png", id="png-bytes-after-its-end"),
        pytest.param(saved("JPEG", progressive=True), "image/jpeg", id="jpeg-progressive"),
        pytest.param(
            saved("JPEG", optimize=True, quality=95, subsampling=0),
            "image/jpeg",
            id="jpeg-optimized",
        ),
        pytest.param(
            saved("JPEG", exif=b"Exif\x00\x00" + bytes(2000)), "image/jpeg", id="jpeg-exif"
        ),
        pytest.param(saved("JPEG", mode="CMYK"), "image/jpeg", id="jpeg-cmyk"),
        pytest.param(
            saved("JPEG") + b"\x00\x00\x00\x18ftypmp42" + bytes(100),
            "image/jpeg",
            id="jpeg-with-a-video-after",
        ),  # a phone's motion photo
        pytest.param(
            saved("GIF", save_all=True, duration=100, loop=0), "image/gif", id="gif-animated"
        ),
        pytest.param(saved("GIF")[:-1], "image/gif", id="gif-without-its-trailer"),
        pytest.param(saved("WEBP", lossless=True), "image/webp", id="webp-lossless"),
        pytest.param(saved("WEBP", save_all=True), "image/webp", id="webp-animated"),
        pytest.param(
            saved("WEBP", mode="RGBA", exif=b"Exif\x00\x00abc"), "image/webp", id="webp-extended"
        ),
        pytest.param(saved("BMP", mode="RGBA"), "image/bmp", id="bmp-32-bit"),
    ],
)
def test_real_images_declare_their_size(raw, media_type):
    assert imagefile.declared(raw) == Declared(media_type, 40, 30)


def patched(raw: bytes, at: int, value: bytes) -> bytes:
    return raw[:at] + value + raw[at + len(value) :]


def jpeg_of(width: int, height: int) -> bytes:
    """A small JPEG whose frame header declares ``width`` x ``height``."""
    raw = picture("JPEG")
    frame = raw.index(b"\xff\xc0")
    return patched(raw, frame + 5, struct.pack(">HH", height, width))


def gif(screen: tuple, *blocks: bytes, trailer: bytes = b";") -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0) + b"".join(blocks) + trailer


def gif_image(width: int, height: int, data: bytes = b"\x02\x02\x44\x01\x00") -> bytes:
    """An image descriptor, no color table, then the LZW code size and sub-blocks."""
    return b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + data


def riff(*chunks: bytes, extra: int = 0) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) + extra) + body


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + bytes(len(data) % 2)


def canvas(width: int, height: int, flags: int = 0) -> bytes:
    """A VP8X chunk: an extended WebP's canvas."""
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + size)


VP8L = lossless_webp(16, 16)[12:]  # a lossless bitstream's chunk


def frame(width: int, height: int) -> bytes:
    """An ANMF chunk: a frame of an animated WebP, at 0, 0, holding a 16x16 bitstream."""
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return riff_chunk(b"ANMF", bytes(6) + size + bytes(4) + VP8L)


def bmp(
    width: int,
    height: int,
    depth: int = 24,
    compression: int = 0,
    header: int = 40,
    pixels: int = 0,
) -> bytes:
    start = 14 + header
    info = struct.pack("<IiiHHI", header, width, height, 1, depth, compression)
    info += bytes(header - len(info))
    return b"BM" + struct.pack("<IHHI", start + pixels, 0, 0, start) + info + bytes(pixels)


@pytest.mark.parametrize(
    "raw, size",
    [
        # a few bytes declaring a picture of gigabytes: the caller weighs it, nothing is decoded
        pytest.param(claiming(20000, 20000), (20000, 20000), id="png"),
        pytest.param(jpeg_of(60000, 60000), (60000, 60000), id="jpeg"),
        pytest.param(gif((65535, 65535), gif_image(1, 1)), (65535, 65535), id="gif-screen"),
        pytest.param(gif((1, 1), gif_image(65535, 9)), (65535, 9), id="gif-frame-over-its-screen"),
        pytest.param(lossless_webp(16384, 16384), (16384, 16384), id="webp-lossless"),
        pytest.param(riff(canvas(1 << 24, 1 << 24), VP8L), (1 << 24, 1 << 24), id="webp-canvas"),
        pytest.param(
            riff(canvas(16, 16), lossless_webp(9000, 9000)[12:]),
            (9000, 9000),
            id="webp-bitstream-over-its-canvas",
        ),
        pytest.param(
            riff(canvas(16, 16, flags=2), frame(16, 16)), (16, 16), id="webp-frame-of-its-canvas"
        ),
        pytest.param(
            riff(canvas(16, 16, flags=2), frame(9000, 9000)),
            (9000, 9000),
            id="webp-frame-over-its-canvas",
        ),
        pytest.param(
            bmp(20000, -400, depth=1, pixels=2500 * 400), (20000, 400), id="bmp-1-bit-top-down"
        ),
    ],
)
def test_what_crafted_images_declare_is_read_without_decoding_them(raw, size):
    found = imagefile.declared(raw)
    assert (found.width, found.height) == size


PNG = picture()
JPEG = picture("JPEG")
GIF = saved("GIF")
WEBP = saved("WEBP")
BMP = saved("BMP")
IHDR = PNG[8:33]
IEND = chunk(b"IEND", b"")
FRAME = JPEG.index(b"\xff\xc0")
SCAN = JPEG.index(b"\xff\xda")


@pytest.mark.parametrize(
    "raw, says",
    [
        (b"", "is not an image the models read (PNG, JPEG, GIF, WebP or BMP)"),
        (b"hello, not an image", "is not an image the models read"),
        (b"II*\x00" + bytes(100), "is not an image the models read"),  # a TIFF
        (saved("ICO"), "is not an image the models read"),
        # PNG
        (PNG[:-40], "cut short"),
        (PNG[:-1], "cut short"),
        (PNG[:8], "cut short"),
        (patched(PNG, 45, b"\x00\x00"), "checksum is wrong"),
        (PNG[:8] + chunk(b"IDAT", b"") + IHDR + PNG[33:], "does not begin with its header"),
        (
            PNG[:8] + chunk(b"IHDR", IHDR[8:16] + b"\x07\x02\x00\x00\x00") + PNG[33:],
            "holds values no PNG has",
        ),
        (
            PNG[:8] + chunk(b"IHDR", IHDR[8:16] + b"\x08\x02\x00\x00\x02") + PNG[33:],
            "holds values no PNG has",
        ),
        (PNG[:8] + IHDR + IEND, "holds no image data"),
        (claiming(0, 10), "declares no pixels"),
        (PNG[:33] + struct.pack(">I", 1 << 31) + b"abcd" + bytes(1 << 16), "cut short"),
        (PNG[:33] + chunk(b"ab1d", b"") + PNG[33:], "a chunk's header is not one"),
        (PNG[:33] + chunk(b"nuLl", b"") * MANY + PNG[33:], "has more chunks than an image may"),
        # JPEG
        (JPEG[:-60], "cut short"),
        (JPEG[:-2], "cut short"),
        (JPEG[:2], "cut short"),
        (JPEG[:FRAME] + JPEG[SCAN:], "a scan comes before its frame header"),
        (JPEG[:SCAN] + b"\xff\xd9", "holds no scan"),
        (jpeg_of(0, 100), "declares no pixels"),
        (JPEG[:FRAME] + b"\xff\xc0\x00\x05\x08\x00\x10" + JPEG[SCAN:], "shorter than one"),
        (JPEG[:FRAME] + b"\xff\xfe\x00\x01" + JPEG[FRAME:], "shorter than its header"),
        (JPEG[:FRAME] + b"\xff\xfe\xff\xff" + bytes(100), "cut short"),
        (JPEG[:FRAME] + b"\xff\xd8" + JPEG[FRAME:], "starts again within itself"),
        (JPEG[:FRAME] + b"\xff\xfe\x00\x02" * MANY + JPEG[FRAME:], "more segments"),
        (JPEG[:FRAME] + b"\xff\x01" * MANY + JPEG[FRAME:], "more segments"),
        # GIF
        (GIF[:-10], "cut short"),
        (GIF[:10], "cut short"),
        (gif((16, 16), gif_image(16, 16, b"\x02\x05\x00")), "cut short"),
        (gif((16, 16), b"\x99"), "a block is of no kind GIF has"),
        (gif((16, 16), b"!\xfe\x03abc\x00"), "holds no image"),
        (gif((16, 16), gif_image(16, 16, b"\x02" + b"\x01\x00" * MANY + b"\x00")), "more blocks"),
        (gif((16, 16), b"!\xfe\x00" * MANY, gif_image(16, 16)), "more blocks"),
        (gif((0, 0), gif_image(0, 0)), "declares no pixels"),
        # WebP
        (WEBP[:-10], "cut short"),
        (WEBP + b"\x00\x00", "says it is shorter than it is"),
        (riff(VP8L, extra=10), "cut short"),
        (riff(riff_chunk(b"EXIF", b"ab"), VP8L), "does not begin with a picture or its canvas"),
        (riff(canvas(16, 16), riff_chunk(b"EXIF", b"ab")), "holds no picture"),
        (riff(riff_chunk(b"VP8L", b"\x2e" + VP8L[9:])), "has no signature"),
        (riff(riff_chunk(b"VP8L", VP8L[8:12] + b"\xff")), "of an unknown version"),
        (riff(riff_chunk(b"VP8L", b"\x2f\x00")), "shorter than its header"),
        (riff(riff_chunk(b"VP8 ", b"\x01" + WEBP[21:])), "does not begin with a key frame"),
        (riff(riff_chunk(b"VP8 ", b"\xf0\xff\xff" + WEBP[23:])), "first part is longer"),
        (riff(canvas(16, 16), VP8L, riff_chunk(b"XMP ", b"") * MANY), "more chunks"),
        # BMP
        (rle_bmp(300, 20), "is a BMP of a kind the models do not read (run-length compressed)"),
        (bmp(16, 16, depth=4, compression=2, pixels=100), "run-length compressed"),
        (bmp(16, 16, compression=4, pixels=100), "holding a JPEG or a PNG"),
        (bmp(16, 16, header=64, pixels=16 * 48), "a bitmap header of 64 bytes"),
        (BMP[:-10], "cut short"),
        (BMP[:20], "cut short"),
        (bmp(100000, 100000, depth=1, pixels=100), "cut short"),
        (bmp(16, 16, depth=7, pixels=16 * 64), "holds values no BMP the models read has"),
        (bmp(16, 16, depth=24, compression=3, pixels=16 * 48), "holds values no BMP"),
        (bmp(-16, 16, pixels=16 * 48), "holds values no BMP"),
        (bmp(0, 16, pixels=0), "declares no pixels"),
        (patched(BMP, 10, struct.pack("<I", 20)), "its pixels begin within its headers"),
    ],
)
def test_what_is_not_a_whole_image_of_a_kind_the_servers_read_is_refused(raw, says):
    with pytest.raises(imagefile.Refused) as caught:
        imagefile.declared(raw)
    assert says in str(caught.value)
