"""The model a request names is resolved once into one value: what the client asked for and
the id metrics, usage and keys count it under (its :class:`Target`, which compares by those
and what its model says of itself)."""

from __future__ import annotations

import pytest

from proxy.api.body import read_json
from proxy.api.requestmodel import answer_name, request_model, request_model_if_read
from proxy.core.errors import InvalidRequestError


@pytest.fixture
def app(make_client):
    return make_client(model_name="served-name").application


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("POST", {"model": "served-name", "messages": []}, ("served-name", "served-name")),
        (
            "POST",
            {"name": "served-name:latest"},
            ("served-name:latest", "served-name"),
        ),  # Ollama's older
        # one model answers to any name, and is counted under its own
        ("POST", {"model": "<other>\r\n"}, ("<other>\r\n", "served-name")),
        ("POST", {"messages": []}, (None, "served-name")),
        ("POST", {"model": ""}, (None, "served-name")),
        ("GET", None, (None, "served-name")),
    ],
)
def test_the_model_is_read_from_the_body_once(app, method, body, expected):
    with app.test_request_context("/v1/chat/completions", method=method, json=body):
        app.preprocess_request()  # its call made, as the first hook makes it
        assert request_model_if_read() is None  # nothing resolved it yet
        model = request_model()
        assert (model.asked, model.id) == expected
        assert request_model() is model and request_model_if_read() is model


def test_a_model_that_is_not_a_string_is_refused_naming_the_field(app):
    with app.test_request_context("/v1/chat/completions", method="POST", json={"model": 3}):
        app.preprocess_request()  # its call made, as the first hook makes it
        with pytest.raises(InvalidRequestError) as raised:
            request_model()
    assert raised.value.param == "model"


@pytest.mark.parametrize(("body", "name"), [({"model": "qwen"}, "qwen"), ({}, "served-name")])
def test_the_answer_names_the_model_asked_for_else_the_default(app, body, name):
    with app.test_request_context("/v1/chat/completions", method="POST", json=body):
        app.preprocess_request()  # its call made, as the first hook makes it
        assert answer_name() == name


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "qwen"}, ("qwen", "served-name")),
        ({"messages": []}, (None, "served-name")),
        ({"model": 3}, None),  # refused by whichever view reads it; counted under no model
        ([1, 2], (None, "served-name")),
    ],
)
def test_a_body_once_read_resolves_its_model_for_metrics_and_usage(app, body, expected):
    """A view that reads the body (a token count) has its model counted without asking."""
    with app.test_request_context("/v1/messages/count_tokens", method="POST", json=body):
        app.preprocess_request()  # its call made, as the first hook makes it
        assert request_model_if_read() is None  # the body is not read yet
        read_json()
        model = request_model_if_read()
        assert (model.asked, model.id) == expected if expected is not None else model is None
