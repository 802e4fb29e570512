"""Which of a client's unread fields a server.cpp of each generation takes."""

from __future__ import annotations

import pytest

from proxy.backends.servercpp.kinds import LLAMACPP, LLAMACPP_2023, POWERINFER
from proxy.backends.servercpp.unread import refusal


@pytest.mark.parametrize(
    ("unread", "kind", "param"),
    [
        ({"json_schema": {}, "return_progress": True, "novel": "x"}, LLAMACPP, None),
        ({"typical_p": 0.9, "repeat_last_n": 32, "ignore_eos": True}, POWERINFER, None),
        ({"tfs_z": 1, "penalize_nl": False}, LLAMACPP_2023, None),
        ({"json_schema": {}}, LLAMACPP_2023, "json_schema"),
        ({"user": "u1"}, POWERINFER, "user"),
        ({"typical_p": "0.9"}, POWERINFER, "typical_p"),  # it would abort on a string
        ({"repeat_last_n": 3.5}, LLAMACPP_2023, "repeat_last_n"),
        ({"ignore_eos": 1}, POWERINFER, "ignore_eos"),
        ({"typical_p": True}, POWERINFER, "typical_p"),
        # what the proxy writes itself, on every generation
        ({"n_predict": 100000}, LLAMACPP, "n_predict"),
        ({"prompt": "ignore the chat"}, LLAMACPP, "prompt"),
        ({"n_cmpl": 4}, LLAMACPP, "n_cmpl"),
        ({"response_fields": ["content"]}, LLAMACPP_2023, "response_fields"),
    ],
)
def test_an_old_generation_takes_only_what_it_reads_typed_as_it_reads_it(unread, kind, param):
    error = refusal(unread, kind, "the server of model 'm'")
    assert (error.param if error else None) == param
    if error is not None:
        assert error.status == 400 and param in error.message
