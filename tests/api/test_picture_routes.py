"""The image routes over an engine that draws nothing: refused by name, with and without
``/v1``, after an edit's pictures were read as a form (never as JSON)."""

from __future__ import annotations

import io

import pytest

from tests.images import picture


def test_a_generation_on_an_engine_that_draws_nothing_is_refused_by_name(client):
    answer = client.post("/images/generations", json={"model": "tiny", "prompt": "a fox"})
    assert answer.status_code == 400
    assert answer.json["error"]["param"] == "model"
    assert "does not draw pictures" in answer.json["error"]["message"]


@pytest.mark.parametrize("name", ["image", "image[]"])
def test_an_edit_is_read_as_a_form_then_refused_by_name(client, name):
    form = {"model": "tiny", "prompt": "at night", name: (io.BytesIO(picture()), "a.png")}
    answer = client.post("/v1/images/edits", data=form, content_type="multipart/form-data")
    assert answer.status_code == 400
    assert "does not draw pictures" in answer.json["error"]["message"]


def test_an_edit_without_pictures_is_refused_naming_them(client):
    answer = client.post("/v1/images/edits", json={"model": "tiny", "prompt": "x"})
    assert answer.status_code == 400 and answer.json["error"]["param"] == "image"
