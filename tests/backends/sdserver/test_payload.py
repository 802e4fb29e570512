"""What sd-server is sent for a drawing: the fields it reads, the seed folded into the
prompt's extra arguments, and every field it would not honour refused by name."""

from __future__ import annotations

import pytest

from proxy.backends.sdserver.payload import fields
from proxy.core.errors import InvalidRequestError
from proxy.core.pictures import Drawing

TAGS = "<sd_cpp_extra_args>{}</sd_cpp_extra_args>"


def drawing(**given) -> Drawing:
    """A generation as the pictures dialect reads it, ``n`` its count."""
    return Drawing("sd", "generations", {"model": "sd", "prompt": "a fox", **given}, (),
                   given.get("n", 1))  # fmt: skip


@pytest.mark.parametrize(
    "given, sent",
    [
        ({}, {"prompt": "a fox"}),
        ({"n": 2, "size": "128x64", "output_format": "jpeg", "output_compression": 80},
         {"prompt": "a fox", "n": 2, "size": "128x64", "output_format": "jpeg",
          "output_compression": 80}),
        ({"size": "auto", "response_format": "b64_json"}, {"prompt": "a fox"}),
        ({"response_format": "url"}, {"prompt": "a fox"}),
        ({"seed": 7}, {"prompt": "a fox" + TAGS.format('{"seed": 7}')}),
        ({"seed": "-3"}, {"prompt": "a fox" + TAGS.format('{"seed": -3}')}),
        ({"seed": 7, "prompt": "a fox" + TAGS.format('{"sample_params": {"sample_steps": 2}}')},
         {"prompt": "a fox" + TAGS.format('{"sample_params": {"sample_steps": 2}, "seed": 7}')}),
        ({"seed": 7, "prompt": TAGS.format('{"seed": 7}') + " at dusk"},
         {"prompt": TAGS.format('{"seed": 7}') + " at dusk"}),
        ({"prompt": "a fox" + TAGS.format("{…")}, {"prompt": "a fox" + TAGS.format("{…")}),
    ],
    ids=["bare", "read-as-written", "auto-and-b64", "links-are-the-proxys", "seed", "form-seed",
         "seed-beside-own-args", "same-seed-twice", "own-args-untouched"],
)  # fmt: skip
def test_what_sd_server_is_sent(given, sent):
    assert fields(drawing(**given)) == sent


@pytest.mark.parametrize(
    "given, param, says",
    [
        ({"quality": "high"}, "quality", "not read by sd-server"),
        ({"style": "vivid"}, "style", "not read by sd-server"),
        ({"user": "u-1"}, "user", "not read by sd-server"),
        ({"size": "100x64"}, "size", "multiples of 64"),
        ({"seed": 1.5}, "seed", "whole number"),
        ({"seed": True}, "seed", "whole number"),
        ({"seed": 2**63}, "seed", "whole number"),
        ({"seed": 7, "prompt": "x" + TAGS.format('{"seed": 8}')}, "seed", "differs"),
        ({"seed": 7, "prompt": "x" + TAGS.format("[1]")}, "prompt", "JSON object"),
    ],
    ids=["quality", "style", "user", "size", "fraction", "boolean", "too-big",
         "two-seeds", "args-not-object"],
)  # fmt: skip
def test_what_sd_server_would_not_honour_is_named(given, param, says):
    with pytest.raises(InvalidRequestError) as caught:
        fields(drawing(**given))
    assert caught.value.param == param and says in caught.value.message


def test_more_pictures_than_sd_server_draws_at_once_are_refused():
    with pytest.raises(InvalidRequestError) as caught:
        fields(drawing(n=9))
    assert caught.value.param == "n" and "at most 8" in caught.value.message
