"""A batch's input file read request by request, before the batch starts."""

from __future__ import annotations

import json

import pytest

from proxy.dialects.dialect import Limits
from proxy.dialects.openai.batchinput import MAX_ERRORS, read_requests

CHAT = "/v1/chat/completions"


def line(**fields) -> bytes:
    item = {"custom_id": "a", "method": "POST", "url": CHAT, "body": {"model": "m"}, **fields}
    return json.dumps({k: v for k, v in item.items() if v is not None}).encode() + b"\n"


@pytest.mark.parametrize(
    "raw, code, param",
    [
        (b"[1, 2]\n", "invalid_request", None),
        (line(custom_id=""), "invalid_request", "custom_id"),
        (line(custom_id="x" * 513), "invalid_request", "custom_id"),
        (line(url="/v1/completions"), "mismatched_endpoint", "url"),
        (line(body=[1]), "invalid_request", "body"),
        (line(body={"model": "m", "stream": True}), "invalid_request", "body.stream"),
        (line(extra=1), "invalid_request", "extra"),
        (b"[" * 10 + b"]" * 10 + b"\n", "invalid_request", None),
        (line(body={"model": "m", "messages": [[[[1]]]]}), "invalid_request", "body.messages"),
        (b'{"custom_id": "\\ud800"}\n', "invalid_request", "custom_id"),
    ],
    ids=[
        "not-an-object",
        "empty-id",
        "long-id",
        "endpoint",
        "body-not-object",
        "streamed",
        "unknown-field",
        "more-containers",
        "nested-deeper",
        "lone-surrogate",
    ],  # fmt: skip
)
def test_each_fault_names_its_line_and_field(raw, code, param):
    """A line is read within the bounds of a live body (here 8 arrays and objects, nested
    4 deep), before anything reads its fields."""
    limits = Limits(max_containers=8, max_nesting=4)
    found, faults = read_requests([line(custom_id="first"), b"\n", raw], CHAT, limits)
    assert [each.custom_id for each in found] == ["first"]
    assert [(f.line, f.code, f.param) for f in faults] == [(3, code, param)]


def test_a_file_of_nothing_is_a_fault_and_faults_are_bounded():
    assert [f.code for f in read_requests([b"\n", b"  \n"], CHAT)[1]] == ["empty_file"]
    found, faults = read_requests([b"{"] * (MAX_ERRORS + 5), CHAT)
    assert not found and len(faults) == MAX_ERRORS


def test_a_line_longer_than_a_body_may_be_is_a_fault():
    found, faults = read_requests(
        [line(custom_id="short"), b"x" * 201 + b"\n"], CHAT, Limits(max_body_size=200)
    )
    assert [each.custom_id for each in found] == ["short"]
    assert [(f.line, f.code) for f in faults] == [(2, "line_too_long")]


def test_what_is_kept_of_a_request_is_where_its_line_is():
    raw = [line(custom_id="a"), b"\n", line(custom_id="b", body={"model": "n", "x": "y" * 50})]
    found, faults = read_requests(raw, CHAT)
    assert not faults
    assert [(each.custom_id, each.model, each.offset, each.body) for each in found] == [
        ("a", "m", 0, None),
        ("b", "n", len(raw[0]) + 1, None),
    ]
    again = read_requests([b"".join(raw)[found[1].offset :]], CHAT)[0][0]
    assert again.custom_id == "b"
