"""An engine's pictures answer read for the links the proxy gives in its place: only an
answer of pictures as ``b64_json`` and no link is linked, each in its place."""

from __future__ import annotations

import base64
import json

import pytest

from proxy.core.pictures import linked, unlinked


def answer(**given) -> bytes:
    return json.dumps({"created": 1, **given}).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "given, found",
    [
        ({"data": [{"b64_json": b64(b"a")}, {"b64_json": b64(b"b")}]},
         [("picture-0.png", b"a"), ("picture-1.png", b"b")]),
        ({"data": [{"b64_json": b64(b"a")}], "output_format": "jpeg"}, [("picture-0.jpeg", b"a")]),
        ({"data": [{"url": "https://engine/a.png"}]}, None),
        ({"data": [{"b64_json": b64(b"a"), "url": "https://engine/a.png"}]}, None),
        ({"data": []}, None),
        ({"data": [{"b64_json": "not base64!"}]}, None),
        ({"data": [{"b64_json": b64(b"a")}], "output_format": "../x"}, None),
        ({"error": "busy"}, None),
    ],
    ids=["two", "its-format", "linked-already", "both", "none", "not-base64", "odd-format",
         "no-data"],
)  # fmt: skip
def test_what_is_linked(given, found):
    assert unlinked(answer(**given)) == found


def test_not_json_is_not_linked():
    assert unlinked(b"<html>") is None


def test_each_picture_gets_its_link_in_place_and_keeps_its_other_fields():
    drawn = answer(data=[{"b64_json": b64(b"a"), "revised_prompt": "a fox"}, {"b64_json": "Yg=="}])
    assert json.loads(linked(drawn, ["https://proxy/1", "https://proxy/2"])) == {
        "created": 1,
        "data": [{"revised_prompt": "a fox", "url": "https://proxy/1"}, {"url": "https://proxy/2"}],
    }
