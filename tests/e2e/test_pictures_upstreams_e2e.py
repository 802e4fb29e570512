"""Pictures through the proxy from an OpenAI-compatible engine (the tests' echo engine, which
keeps what it is sent), with the real ``openai`` SDK: a generation's body and an edit's form
reach the engine as the client wrote them (its pictures byte for byte, in order) under the
engine's model name; the pictures come back as the engine drew them and its counted tokens
are charged to the key. A key may use only the models it is granted, read from the form
itself; what is not a picture, or asks for more than the bounds, is refused before anything
is sent; a key with budgets holds and is charged its pictures, by the picture."""

from __future__ import annotations

import base64
import hashlib

import openai
import pytest

from tests.images import picture

from .echoed import charged, echoed, emptied
from .servers.echo_upstream import picture as picture_of

pytestmark = [pytest.mark.e2e]

MODELS = """
[models.painter]
backend = "openai"
upstreams = ["{echo}/v1"]
upstream_model = "echo-painter"
endpoints = ["image_generations", "image_edits"]
price = {{ image = 0.04 }}
[models.other]
backend = "openai"
upstreams = ["{echo}/v1"]
endpoints = ["chat"]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory, logs):
    """``(echo engine, proxy)``."""
    folder = tmp_path_factory.mktemp("pictures")
    with echoed(
        folder, logs, "pictures", MODELS, "painter", ("--max-image-pixels", str(2048 * 2048))
    ) as pair:
        yield pair


@pytest.fixture
def echo(served):
    return emptied(served)


def drawn(prompt: str, n: int) -> list:
    """The pictures the echo engine draws of ``prompt``, in base64."""
    return [base64.b64encode(picture_of(prompt, each)).decode() for each in range(n)]


def test_a_generation_reaches_the_engine_as_written_and_its_tokens_are_charged(served, echo):
    _, proxy = served
    before = charged(proxy, "alice", "painter")
    answer = proxy.sdk("sk-alice").images.generate(
        model="painter", prompt="a red fox in snow", n=2, size="1024x1024",
        response_format="b64_json", extra_body={"quality": "high", "sd_steps": 4},
    )  # fmt: skip
    assert [each.b64_json for each in answer.data] == drawn("a red fox in snow", 2)
    (sent,) = echo.received()
    assert sent == {"path": "/v1/images/generations", "body": {
        "model": "echo-painter", "prompt": "a red fox in snow", "n": 2, "size": "1024x1024",
        "response_format": "b64_json", "quality": "high", "sd_steps": 4,
    }}  # fmt: skip
    after = charged(proxy, "alice", "painter")
    assert after["prompt_tokens"] - before.get("prompt_tokens", 0) == 5
    assert after["completion_tokens"] - before.get("completion_tokens", 0) == 2 * 272


def test_an_edit_reaches_the_engine_with_its_pictures_byte_for_byte(served, echo):
    _, proxy = served
    fox, snow, mask = picture(), picture("JPEG", (48, 32)), picture(color=(0, 0, 0))
    answer = proxy.sdk("sk-alice").images.edit(
        model="painter", prompt="the fox in the snow", image=[("fox.png", fox, "image/png"),
        ("snow.jpg", snow, "image/jpeg")], mask=("mask.png", mask, "image/png"), n=1,
    )  # fmt: skip
    assert [each.b64_json for each in answer.data] == drawn("the fox in the snow", 1)
    (sent,) = echo.received()
    assert sent["path"] == "/v1/images/edits"
    assert (sent["fields"]["model"], sent["fields"]["prompt"]) == (
        ["echo-painter"],
        ["the fox in the snow"],
    )
    assert [(each["field"], each["filename"], each["sha256"]) for each in sent["files"]] == [
        ("image[]", "fox.png", hashlib.sha256(fox).hexdigest()),
        ("image[]", "snow.jpg", hashlib.sha256(snow).hexdigest()),
        ("mask", "mask.png", hashlib.sha256(mask).hexdigest()),
    ]  # fmt: skip


def test_a_key_may_use_only_its_models_read_from_the_form(served, echo):
    _, proxy = served
    with pytest.raises(openai.APIStatusError) as refused:
        proxy.sdk("sk-bob").images.edit(model="painter", prompt="x",
                                        image=("a.png", picture(), "image/png"))  # fmt: skip
    assert refused.value.status_code in (403, 404)
    assert echo.received() == []


@pytest.mark.parametrize(
    "edit, fields, param",
    [
        (True, {"image": ("a.png", b"not a picture", "image/png")}, "image"),
        (False, {"size": "4096x4096"}, "size"),
        (False, {"n": 11}, "n"),
        (False, {"stream": True}, "stream"),
    ],
    ids=["not-a-picture", "too-many-pixels", "too-many", "streamed"],
)
def test_what_the_bounds_refuse_is_refused_before_anything_is_sent(served, echo, edit,
                                                                     fields, param):  # fmt: skip
    _, proxy = served
    images = proxy.sdk("sk-alice").images
    with pytest.raises(openai.BadRequestError) as refused:
        if edit:
            images.edit(model="painter", prompt="x", **fields)
        else:
            images.generate(model="painter", prompt="x", **fields)
    assert refused.value.body["param"] == param
    assert echo.received() == []


def test_a_key_with_budgets_is_held_and_charged_its_pictures(served, echo):
    _, proxy = served
    before = charged(proxy, "carol", "painter")
    proxy.sdk("sk-carol").images.generate(model="painter", prompt="a red fox", n=2)
    after = charged(proxy, "carol", "painter")
    assert after["pictures"] - before.get("pictures", 0) == 2
    assert after["completion_tokens"] - before.get("completion_tokens", 0) == 2 * 272
    assert round(after["spend_usd"] - before.get("spend_usd", 0), 6) == 0.08
    proxy.sdk("sk-dave").images.generate(model="painter", prompt="a red fox")  # 0.04 of 0.05
    assert charged(proxy, "dave", "painter")["pictures"] == 1
    with pytest.raises(openai.RateLimitError) as refused:
        proxy.sdk("sk-dave").images.generate(model="painter", prompt="a red fox")
    assert "1 pictures" in refused.value.body["message"]
    assert len(echo.received()) == 2  # the refused one was never sent


def test_a_model_whose_engine_does_not_draw_refuses_by_name(served, echo):
    _, proxy = served
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.sdk("sk-bob").images.generate(model="other", prompt="x")
    assert refused.value.body["param"] == "model"
    assert "does not draw pictures" in refused.value.body["message"]
    assert echo.received() == []
