"""OpenAI's image requests as the proxy reads them: what it reads checked and refused by name
before anything is sent, every other field kept as the client wrote it."""

from __future__ import annotations

import pytest

from proxy.core.audio import Upload
from proxy.core.errors import InvalidRequestError
from proxy.dialects.dialect import Limits
from proxy.dialects.pictures import parse_edit, parse_generation
from tests.images import noise, picture

LIMITS = Limits(max_image_size=1 << 16, max_image_pixels=1024 * 1024)
PNG = Upload("a.png", "image/png", picture())


def test_a_generation_is_kept_as_written():
    body = {"model": "m", "prompt": "a fox", "n": 3, "size": "512x512", "seed": 7}
    asked = parse_generation(body, LIMITS)
    assert (asked.model, asked.task, asked.fields, asked.n) == ("m", "generations", body, 3)
    assert asked.pixels == 512 * 512


@pytest.mark.parametrize("size", [None, "auto"])
def test_a_drawing_that_asks_no_size_has_no_pixels_told(size):
    body = {"model": "m", "prompt": "a fox", **({"size": size} if size else {})}
    assert parse_generation(body, LIMITS).pixels == 0


def test_an_edit_keeps_its_pictures_in_order_and_reads_n_from_the_form():
    uploads = (("image[]", PNG), ("image[]", PNG), ("mask", PNG))
    asked = parse_edit({"model": "m", "prompt": "x", "n": "2", "size": "256x512"}, uploads, LIMITS)
    assert (asked.task, asked.uploads, asked.n, asked.pixels) == ("edits", uploads, 2, 256 * 512)


@pytest.mark.parametrize(
    "body, param, says",
    [
        ({"prompt": "x"}, "model", "is required"),
        ({"model": "m"}, "prompt", "is required"),
        ({"model": "m", "prompt": "x" * 32001}, "prompt", "32000"),
        ({"model": "m", "prompt": "x", "n": 0}, "n", "from 1 to 10"),
        ({"model": "m", "prompt": "x", "n": 2.5}, "n", "from 1 to 10"),
        ({"model": "m", "prompt": "x", "n": True}, "n", "from 1 to 10"),
        ({"model": "m", "prompt": "x", "size": "big"}, "size", "WIDTHxHEIGHT"),
        ({"model": "m", "prompt": "x", "size": "2048x1024"}, "size", "--max-image-pixels"),
        ({"model": "m", "prompt": "x", "response_format": "png"}, "response_format", "b64_json"),
        ({"model": "m", "prompt": "x", "stream": True}, "stream", "answered whole"),
    ],
    ids=["no-model", "no-prompt", "long-prompt", "none", "fraction", "boolean", "size-words",
         "too-many-pixels", "answer-format", "stream"],
)  # fmt: skip
def test_a_bad_generation_is_named(body, param, says):
    with pytest.raises(InvalidRequestError) as caught:
        parse_generation(body, LIMITS)
    assert caught.value.param == param and says in caught.value.message


@pytest.mark.parametrize(
    "form, uploads, param, says",
    [
        ({"model": "m", "prompt": "x"}, (), "image", "is required"),
        ({"model": "m", "prompt": "x"}, (("mask", PNG),), "image", "is required"),
        ({"model": "m", "prompt": "x"}, (("image", PNG),) * 17, "image", "at most 16"),
        ({"model": "m", "prompt": "x"}, (("image", PNG), ("mask", PNG), ("mask", PNG)), "mask",
         "one picture"),
        ({"model": "m", "prompt": "x"}, (("image[]", PNG), ("image[]", Upload("b", "", b"no"))),
         "image[1]", "not"),
        ({"model": "m", "prompt": "x"}, (("image", Upload("a", "", noise((256, 256)))),),
         "image", "larger"),
        ({"model": "m", "prompt": "x", "n": "two"}, (("image", PNG),), "n", "from 1 to 10"),
    ],
    ids=["no-picture", "a-mask-alone", "too-many", "two-masks", "not-a-picture", "too-large",
         "n-in-words"],
)  # fmt: skip
def test_a_bad_edit_is_named(form, uploads, param, says):
    with pytest.raises(InvalidRequestError) as caught:
        parse_edit(form, uploads, LIMITS)
    assert caught.value.param == param and says in caught.value.message
