"""A message batch's results in Anthropic's words, from the lines of its answers and errors."""

from __future__ import annotations

import pytest

from proxy.dialects.anthropic.batches import result

MESSAGE = {"type": "message", "content": [{"type": "text", "text": "hi"}]}
REFUSED = {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens"}}


@pytest.mark.parametrize(
    "line, ok, shown",
    [
        ({"response": {"status_code": 200, "body": MESSAGE}, "error": None}, True,
         {"type": "succeeded", "message": MESSAGE}),
        ({"response": {"status_code": 400, "body": REFUSED}, "error": None}, False,
         {"type": "errored", "error": REFUSED}),
        ({"response": None, "error": {"code": "input_changed", "message": "line 2 changed"}},
         False, {"type": "errored", "error": {"type": "error", "error": {
             "type": "invalid_request_error", "message": "line 2 changed"}}}),
        ({"response": None, "error": {"code": "batch_cancelled", "message": "cancelled"}}, False,
         {"type": "canceled"}),
        ({"response": None, "error": {"code": "batch_expired", "message": "expired"}}, False,
         {"type": "expired"}),
    ],
    ids=["succeeded", "refused", "never-asked", "canceled", "expired"],
)  # fmt: skip
def test_each_line_is_its_result(line, ok, shown):
    assert result({"custom_id": "a", **line}, ok) == {"custom_id": "a", "result": shown}
