"""Vertex AI's predictions read into their instances' own requests, and their errors placed."""

from __future__ import annotations

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.dialects import vertex
from proxy.dialects.dialect import Limits

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def test_each_instance_is_a_request_of_the_api_it_names():
    body = {"instances": [{"@requestFormat": "chatCompletions", **CHAT}] * 2}
    assert vertex.instances(body, Limits()) == [("/v1/chat/completions", CHAT)] * 2


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "instances"),
        ({"instances": []}, "instances"),
        ({"instances": ["hi"]}, "instances[0]"),
        ({"instances": [CHAT]}, "instances[0].@requestFormat"),
        ({"instances": [{"@requestFormat": "embeddings"}]}, "instances[0].@requestFormat"),
        (
            {"instances": [{"@requestFormat": "chatCompletions", "stream": True}]},
            "instances[0].stream",
        ),
        ({"instances": [{"@requestFormat": "chatCompletions"}] * 3}, "instances"),
    ],
    ids=["none", "empty", "not-an-object", "no-format", "other-format", "streamed", "too-many"],
)
def test_what_is_not_served_is_refused_by_its_place(body, param):
    with pytest.raises(InvalidRequestError) as refused:
        vertex.instances(body, Limits(max_batch=2))
    assert refused.value.param == param


@pytest.mark.parametrize(
    "error, placed",
    [
        ({"error": {"param": "temperature", "message": "m"}}, "instances[1].temperature"),
        ({"error": {"param": None, "message": "m"}}, None),
    ],
)
def test_an_instances_error_names_its_field_in_its_instance(error, placed):
    assert vertex.placed(error, 1)["error"]["param"] == placed
