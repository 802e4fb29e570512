"""Embeddings as OpenAI's API asks for them and answers them, read and checked."""

from __future__ import annotations

import base64
import struct

import pytest

from proxy.backends.openai import vectors
from proxy.core.answers import Embeddings
from proxy.core.errors import UpstreamError


def test_the_body_asks_for_floats_under_the_upstreams_name():
    assert vectors.body(("a", "b"), "bge-m3") == {
        "model": "bge-m3",
        "input": ["a", "b"],
        "encoding_format": "float",
    }


def packed(*floats: float) -> str:
    return base64.b64encode(struct.pack(f"<{len(floats)}f", *floats)).decode()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (  # in the order of the inputs, whatever the order of the data
            {
                "data": [{"index": 1, "embedding": [0.5, 1]}, {"index": 0, "embedding": [0.25]}],
                "usage": {"prompt_tokens": 7, "total_tokens": 7},
            },
            Embeddings(([0.25], [0.5, 1]), 7),
        ),
        (
            {
                "data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [2.0]}],
                "usage": {"total_tokens": 3},
            },
            Embeddings(([1.0], [2.0]), 3),
        ),
        (  # no usage: none counted (the proxy has no tokenizer of the model)
            {"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [2.0]}]},
            Embeddings(([1.0], [2.0]), 0),
        ),
        (  # base64 sent anyway
            {
                "data": [
                    {"index": 0, "embedding": packed(0.5, -1.0)},
                    {"index": 1, "embedding": packed(2.0)},
                ],
                "usage": {"prompt_tokens": 2},
            },
            Embeddings(([0.5, -1.0], [2.0]), 2),
        ),
    ],
)
def test_vectors_are_read_in_the_order_of_the_inputs(answer, expected):
    assert vectors.embeddings(answer, 2, "up", "/embeddings") == expected


@pytest.mark.parametrize(
    "answer",
    [
        {},
        [],
        {"data": None},
        {"data": [{"index": 0}]},
        {"data": [{"index": 0, "embedding": []}, {"index": 1, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": ["x"]}, {"index": 1, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": [True]}, {"index": 1, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": "not base64!"}, {"index": 1, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": "AAA="}, {"index": 1, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": [1.0]}]},  # one of two
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]},
    ],
)
def test_an_answer_without_a_vector_for_each_input_is_the_servers_fault(answer):
    with pytest.raises(UpstreamError, match="up answered /embeddings"):
        vectors.embeddings(answer, 2, "up", "/embeddings")
