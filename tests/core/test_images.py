"""Images as clients send them: read, checked, placed in their message's text."""

from __future__ import annotations

import pytest

from proxy.core import images
from proxy.core.errors import InvalidRequestError
from proxy.core.types import Image, Message, Sound, amended
from tests.images import base64_of, claiming, data_uri, lossless_webp, noise, picture

BOUNDS = images.Bounds(size=1 << 20, pixels=1000 * 1000)


def damaged(raw: bytes) -> bytes:
    """``raw`` with bytes in its middle overwritten."""
    middle = len(raw) // 2
    return raw[:middle] + bytes(16) + raw[middle + 16 :]


FIELD = "messages[0].content[1].image_url.url"


@pytest.mark.parametrize(
    "kind, media_type",
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
    ],
)
def test_each_kind_the_servers_read_is_told_by_its_bytes(kind, media_type):
    # the client's own media type is not trusted: the bytes say what they are
    image = images.from_data_uri(data_uri(picture(kind), "image/png"), FIELD, BOUNDS, at=4)
    assert (image.media_type, image.at, image.field) == (media_type, 4, FIELD)
    assert image.data == base64_of(picture(kind))
    assert image.data_uri == f"data:{media_type};base64,{image.data}"


@pytest.mark.parametrize(
    "uri, says",
    [
        ("data:text/plain;base64,aGVsbG8=", "is a data URI of text/plain, not of an image"),
        ("data:image/png,rawbytes", "must be base64"),
        ("image/png;base64,AAAA", "must be a data URI"),
        ("data:image/png;base64," + base64_of(b"hello, not an image"), "is not an image"),
        (
            "data:image/png;base64," + base64_of(picture())[:-7],
            "is not base64 text, or is cut short",
        ),
        ("data:image/png;base64," + base64_of(picture()[:-40]), "is not a whole image"),
        ("data:image/png;base64,@@@@", "is not base64 text"),
        ("data:image/png;base64," + base64_of(damaged(noise((16, 16)))), "is not a whole image"),
        ("data:image/jpeg;base64," + base64_of(picture("JPEG")[:-60]), "is not a whole image"),
    ],
)
def test_what_is_not_a_whole_image_is_a_400_naming_the_field(uri, says):
    with pytest.raises(InvalidRequestError) as caught:
        images.from_data_uri(uri, FIELD, BOUNDS)
    assert caught.value.param == FIELD
    assert caught.value.message.startswith(f"'{FIELD}' ")
    assert says in caught.value.message


def test_an_image_over_the_limit_is_refused_before_it_is_read():
    raw = picture(size=(256, 256))
    small = images.Bounds(size=100, pixels=BOUNDS.pixels)
    for read in (
        lambda: images.from_base64(base64_of(raw), FIELD, small),
        lambda: images.from_bytes(raw, FIELD, small),
    ):
        with pytest.raises(InvalidRequestError, match="larger than the 100 bytes"):
            read()


@pytest.mark.parametrize(
    "raw, size",
    [
        (claiming(20000, 20000), "20000x20000"),
        (lossless_webp(1001, 1000), "1001x1000"),
        (picture("GIF", size=(1000, 1001)), "1000x1001"),
    ],
)
def test_an_image_of_too_many_pixels_is_refused_by_its_header(raw, size):
    with pytest.raises(InvalidRequestError) as caught:
        images.from_bytes(raw, FIELD, BOUNDS)
    assert caught.value.param == FIELD
    assert caught.value.message == (
        f"'{FIELD}' has more pixels than an image may have: {size}, over 1000000"
    )


def test_an_image_of_as_many_pixels_as_it_may_have_is_read():
    assert (
        images.from_bytes(picture("JPEG", size=(1000, 1000)), FIELD, BOUNDS).media_type
        == "image/jpeg"
    )


def test_bytes_fetched_are_kept_as_base64():
    image = images.from_bytes(picture("JPEG"), FIELD, BOUNDS, at=2)
    assert (image.media_type, image.at, image.data) == ("image/jpeg", 2, base64_of(picture("JPEG")))


ONE = Image("a", 0, "image/png", "AAAA")
TWO = Image("b", 5, "image/png", "BBBB")
PURR = Sound("c", 0, "wav", "UklGRg==")


@pytest.mark.parametrize(
    "message, expected",
    [
        (Message("user", "hello"), ["hello"]),
        (Message("user", ""), [""]),
        (Message("user", "", images=(ONE,)), [ONE]),
        (Message("user", "hello", images=(ONE,)), [ONE, "hello"]),
        (Message("user", "hello", images=(TWO,)), ["hello", TWO]),
        (Message("user", "hello world", images=(TWO, ONE)), [ONE, "hello", TWO, " world"]),
        (Message("user", "hello", images=(amended(ONE, order=1),), sounds=(PURR,)),
         [PURR, amended(ONE, order=1), "hello"]),
        (Message("user", "hello", images=(ONE,), sounds=(amended(PURR, at=5, order=1),)),
         [ONE, "hello", amended(PURR, at=5, order=1)]),
    ],
    ids=["text", "empty", "image", "image-first", "image-last", "images", "sound-then-image",
         "image-then-sound"],
)  # fmt: skip
def test_pieces_keep_the_order_the_client_gave(message, expected):
    assert list(images.pieces(message)) == expected


def test_marked_puts_the_servers_marker_where_each_image_and_sound_stood():
    messages = (
        Message("system", "be brief"),
        Message("user", "hello world", images=(ONE, TWO), sounds=(amended(PURR, order=1),)),
    )
    marked = images.marked(messages, "<__media__>")
    assert marked[0] is messages[0]
    assert marked[1] == Message("user", "<__media__><__media__>hello<__media__> world")
    assert images.media(messages) == [ONE, amended(PURR, order=1), TWO]  # the markers' order


def test_unseen_names_the_field_and_the_model():
    error = images.unseen(TWO, "tiny", "it reads text only")
    assert (error.status, error.param) == (400, "b")
    assert error.message == (
        "'b' is an image, and the model 'tiny' cannot see images: it reads text only"
    )
