"""What the proxy reads of llama.cpp's own ``/completion`` body: the rest goes on as it came."""

from __future__ import annotations

import pytest

from proxy.dialects import native
from proxy.dialects.dialect import Limits


@pytest.mark.parametrize(
    "prompt, several",
    [
        ("one", False),
        ([1, 2, 3], False),
        (["one", 1, 2], False),
        (["one"], False),
        (["one", "two"], True),
        ([[1, 2], [3]], True),
        ([{"prompt_string": "a"}, "b"], True),
        ({"prompt_string": "a"}, False),
    ],
)
def test_several_prompts_as_llama_server_reads_them(prompt, several):
    assert native.several(prompt) is several


@pytest.mark.parametrize(
    "body, length",
    [
        ({"n_predict": 8}, 8),
        ({"max_tokens": 8}, 8),
        ({"n_predict": 8, "max_tokens": 2}, 8),
        ({"n_predict": -1}, None),
        ({"n_predict": "8"}, None),
        ({}, None),
        ({"n_predict": 8, "prompt": ["one", "two", "three"]}, 24),
        ({"n_predict": 8, "prompt": [1, 2, 3]}, 8),
    ],
)
def test_the_answers_length_is_read_as_the_server_reads_it(body, length):
    ask = native.parse({"prompt": "x", **body}, Limits())
    assert ask.request.max_tokens == length


def test_a_prompt_not_a_text_is_held_by_its_json():
    request = native.parse({"prompt": [1, 2, 3]}, Limits()).request
    assert request.prompt == "[1, 2, 3]" and request.verbatim.body == {"prompt": [1, 2, 3]}
