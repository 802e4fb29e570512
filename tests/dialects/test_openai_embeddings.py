"""OpenAI's embeddings both ways: the fields read (``dimensions`` honoured, every other
field refused by its name rather than dropped) and vectors cut to the dimensions asked."""

import math

import pytest

from proxy.core.answers import Embeddings
from proxy.core.errors import InvalidRequestError
from proxy.dialects.dialect import Limits
from proxy.dialects.openai import embeddings

RESULT = Embeddings(((3.0, 4.0, 12.0), (0.0, 0.0, 1.0)), 6)


@pytest.mark.parametrize(
    "body, dimensions",
    [
        ({"input": "hi"}, None),
        ({"input": "hi", "dimensions": 2, "user": "u-1", "encoding_format": "float"}, 2),
        ({"input": "hi", "dimensions": None, "pooling": None}, None),
    ],
    ids=["plain", "openai-fields", "nulls-as-absent"],
)
def test_the_fields_read(body, dimensions):
    assert embeddings.parse(body, Limits()).dimensions == dimensions


@pytest.mark.parametrize(
    "body, param",
    [
        ({"input": "hi", "pooling": "none"}, "pooling"),
        ({"input": "hi", "embd_normalize": 2}, "embd_normalize"),
        ({"input": "hi", "dimensions": 0}, "dimensions"),
        ({"input": "hi", "dimensions": "2"}, "dimensions"),
    ],
    ids=["llama-servers-pooling", "unknown", "dimensions-0", "dimensions-string"],
)
def test_a_field_not_served_is_refused_by_name(body, param):
    with pytest.raises(InvalidRequestError) as refused:
        embeddings.parse(body, Limits())
    assert refused.value.param == param


def test_vectors_cut_to_the_dimensions_asked_are_unit_vectors():
    data = embeddings.render(RESULT, "m", dimensions=2)["data"]
    assert [item["embedding"] for item in data] == [[0.6, 0.8], [0.0, 0.0]]
    whole = embeddings.render(RESULT, "m")["data"][0]["embedding"]
    assert whole == [3.0, 4.0, 12.0]  # as the engine gave them, where none are asked
    assert math.isclose(sum(x * x for x in data[0]["embedding"]), 1.0)


def test_more_dimensions_than_the_model_has_are_refused_by_name():
    with pytest.raises(InvalidRequestError) as refused:
        embeddings.render(RESULT, "m", dimensions=4)
    assert (refused.value.param, "at most 3" in refused.value.message) == ("dimensions", True)


TEXT = {"content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "world"}]}


@pytest.mark.parametrize(
    "given, prompts",
    [
        ("", [""]),
        ("hi", ["hi"]),
        ([12, 34], [[12, 34]]),
        ([12, "hi", 34], [[12, "hi", 34]]),
        (["a", "b"], ["a", "b"]),
        (["a", [12, 34]], ["a", [12, 34]]),
        ([[12], [12, "x", 34]], [[12], [12, "x", 34]]),
        ({"prompt_string": "hi"}, ["hi"]),
        (TEXT, ["hello world"]),
        (["a", {"prompt_string": "b"}, TEXT], ["a", "b", "hello world"]),
    ],
    ids=[
        "empty-text",
        "text",
        "ids",
        "ids-among-texts",
        "texts",
        "text-and-ids",
        "lists",
        "prompt-string",
        "content-parts",
        "objects-among-texts",
    ],
)
def test_the_prompts_as_llama_server_reads_them(given, prompts):
    assert list(embeddings.parse({"input": given}, Limits()).inputs) == prompts


@pytest.mark.parametrize(
    "given, param",
    [
        ([], "input"),
        ({"content": "hi"}, "input.content"),
        ({"content": [{"type": "unknown"}]}, "input.content[0].type"),
        ({"content": [{"type": "image_url", "image_url": {"url": "x"}}]}, "input.content[0].type"),
        ({"prompt_string": "a", "multimodal_data": ["x"]}, "input.multimodal_data"),
        (["a", 3.5], "input[1]"),
        ([True], "input[0]"),
    ],
    ids=["none", "content-text", "unknown-part", "image", "multimodal", "number", "boolean"],
)
def test_a_prompt_not_served_is_refused_by_its_place(given, param):
    with pytest.raises(InvalidRequestError) as refused:
        embeddings.parse({"input": given}, Limits())
    assert refused.value.param == param


@pytest.mark.parametrize(
    "prompt, runs",
    [
        ("hi", ["hi"]),
        ([1, 2], [[1, 2]]),
        ([1, "a", 2, 3, "b"], [[1], "a", [2, 3], "b"]),
        (["a", "b"], ["a", "b"]),
    ],
)
def test_a_prompt_is_texts_and_runs_of_ids(prompt, runs):
    assert embeddings.runs(prompt) == runs
