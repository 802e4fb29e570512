"""The model a request names is resolved once into one value: what the client asked for and
the id metrics, usage and keys count it under."""

from __future__ import annotations

import pytest

from proxy.api.body import read_json
from proxy.api.model import RoutedModel, answer_name, resolved_model, routed_model
from proxy.core.errors import InvalidRequestError


@pytest.fixture
def app(make_client):
    return make_client(model_name="served-name").application


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        (
            "POST",
            {"model": "served-name", "messages": []},
            RoutedModel("served-name", "served-name"),
        ),
        (
            "POST",
            {"name": "served-name:latest"},
            RoutedModel("served-name:latest", "served-name"),
        ),  # Ollama's older
        # one model answers to any name, and is counted under its own
        ("POST", {"model": "<other>\r\n"}, RoutedModel("<other>\r\n", "served-name")),
        ("POST", {"messages": []}, RoutedModel(None, "served-name")),
        ("POST", {"model": ""}, RoutedModel(None, "served-name")),
        ("GET", None, RoutedModel(None, "served-name")),
    ],
)
def test_the_model_is_read_from_the_body_once(app, method, body, expected):
    with app.test_request_context("/v1/chat/completions", method=method, json=body):
        assert resolved_model() is None  # nothing resolved it yet
        routed = routed_model()
        assert routed == expected and routed_model() is routed and resolved_model() is routed


def test_a_model_that_is_not_a_string_is_refused_naming_the_field(app):
    with app.test_request_context("/v1/chat/completions", method="POST", json={"model": 3}):
        with pytest.raises(InvalidRequestError) as raised:
            routed_model()
    assert raised.value.param == "model"


@pytest.mark.parametrize(("body", "name"), [({"model": "qwen"}, "qwen"), ({}, "served-name")])
def test_the_answer_names_the_model_asked_for_else_the_default(app, body, name):
    with app.test_request_context("/v1/chat/completions", method="POST", json=body):
        assert answer_name() == name


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "qwen"}, RoutedModel("qwen", "served-name")),
        ({"messages": []}, RoutedModel(None, "served-name")),
        ({"model": 3}, None),  # refused by whichever view reads it; counted under no model
        ([1, 2], RoutedModel(None, "served-name")),
    ],
)
def test_a_body_once_read_resolves_its_model_for_metrics_and_usage(app, body, expected):
    """A view that reads the body (a token count) has its model counted without asking."""
    with app.test_request_context("/v1/messages/count_tokens", method="POST", json=body):
        assert resolved_model() is None  # the body is not read yet
        read_json()
        assert resolved_model() == expected
