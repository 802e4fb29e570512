"""Every error says in one line what it means, and the module's picture shows them all."""
from __future__ import annotations

import inspect

import pytest

from proxy.core import errors

CLASSES = [value for value in vars(errors).values()
           if inspect.isclass(value) and issubclass(value, errors.ProxyError)]


@pytest.mark.parametrize("kind", CLASSES, ids=lambda kind: kind.__name__)
def test_each_error_says_what_it_means_and_is_in_the_picture(kind):
    assert "__doc__" in vars(kind) and vars(kind)["__doc__"].strip()
    assert kind.__name__ in errors.__doc__


@pytest.mark.parametrize("error, status, kind", [
    (errors.RequestsLimitError("x"), 429, "requests"),
    (errors.TokensLimitError("x"), 429, "tokens"),
    (errors.HTTPError("x", 418), 418, "invalid_request_error"),
    (errors.HTTPError("x", 502), 502, "server_error"),
    (errors.QueueFullError("x"), 503, "upstream_error"),
])
def test_statuses_and_types_come_from_the_class(error, status, kind):
    assert (error.status, error.type) == (status, kind)
