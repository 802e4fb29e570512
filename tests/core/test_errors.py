"""Every error says in one line what it means, and the module's picture shows them all."""

from __future__ import annotations

import inspect

import pytest

from proxy.core import errors

CLASSES = [
    value
    for value in vars(errors).values()
    if inspect.isclass(value) and issubclass(value, errors.ProxyError)
]


@pytest.mark.parametrize("kind", CLASSES, ids=lambda kind: kind.__name__)
def test_each_error_says_what_it_means_and_is_in_the_picture(kind):
    assert "__doc__" in vars(kind) and vars(kind)["__doc__"].strip()
    assert kind.__name__ in errors.__doc__


@pytest.mark.parametrize(
    "error, status, kind",
    [
        (errors.RequestsLimitError("x"), 429, "requests"),
        (errors.TokensLimitError("x"), 429, "tokens"),
        (errors.HTTPError("x", 418), 418, "invalid_request_error"),
        (errors.HTTPError("x", 502), 502, "server_error"),
        (errors.QueueFullError("x"), 503, "upstream_error"),
    ],
)
def test_statuses_and_types_come_from_the_class(error, status, kind):
    assert (error.status, error.type) == (status, kind)


@pytest.mark.parametrize(
    ("model", "known", "allowed", "message"),
    [
        pytest.param(
            "gpt-9",
            ["b", "a"],
            None,
            "The model 'gpt-9' does not exist here; the models "
            "are a, b (GET /v1/models lists their aliases too)",
            id="every-id-sorted",
        ),
        pytest.param(
            "gpt-9",
            ["b", "a"],
            {"b"},
            "The model 'gpt-9' does not exist here; the "
            "models are b (GET /v1/models lists their aliases too)",
            id="the-callers",
        ),
        pytest.param(
            "gpt-9",
            ["b", "a"],
            set(),
            "The model 'gpt-9' does not exist here",
            id="none-the-caller-may-use",
        ),
        pytest.param(
            None,
            ["a"],
            None,
            "The default model does not exist here; the models are a "
            "(GET /v1/models lists their aliases too)",
            id="no-model-named",
        ),
    ],
)
def test_a_missing_model_lists_only_the_ids_its_caller_may_use(model, known, allowed, message):
    error = errors.ModelNotFoundError(model, known)
    if allowed is not None:
        error = error.among(allowed.__contains__)
    assert (error.message, error.param, error.status, error.code) == (
        message,
        "model",
        404,
        "model_not_found",
    )
