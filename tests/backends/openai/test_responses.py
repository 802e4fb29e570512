"""A Responses client's own body to an upstream's Responses API, and its answer read."""

from __future__ import annotations

import json

import pytest

from proxy.backends.openai.responses import ResponsesWay, completion, passed_chunks
from proxy.core.answers import Chunk, Usage
from proxy.core.errors import ProxyError, UpstreamError
from proxy.core.events import Passed
from proxy.core.types import ToolCall
from proxy.dialects.responses.passing import passed

OWN = {"model": "asked", "input": "hi", "store": False, "priority": 3, "truncation": "auto",
       "include": ["reasoning.encrypted_content"]}  # fmt: skip
ANSWER = {
    "id": "resp_1", "object": "response", "model": "up", "status": "completed",
    "output": [
        {"type": "reasoning", "summary": []},
        {"type": "message", "content": [{"type": "output_text", "text": "Hello"},
                                        {"type": "output_text", "text": " there"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    ],
    "usage": {"input_tokens": 9, "output_tokens": 4, "input_tokens_details": {"cached_tokens": 5}},
}  # fmt: skip


def test_the_body_goes_as_it_came_but_the_proxys_own_field():
    body = ResponsesWay(OWN, "up", "qwen").body(stream=True)
    assert body == {**{k: v for k, v in OWN.items() if k != "priority"}, "model": "qwen",
                    "stream": True}  # fmt: skip


def test_a_whole_response_is_read_and_kept_as_the_upstream_wrote_it():
    read = ResponsesWay(OWN, "up", "qwen").whole(ANSWER)
    assert read.text == "Hello there" and read.verbatim is ANSWER
    assert read.tool_calls == (ToolCall("c1", "f", "{}"),) and read.finish_reason == "tool_calls"
    assert read.usage == Usage(9, 4, 5)
    incomplete = {**ANSWER, "output": [], "status": "incomplete",
                  "incomplete_details": {"reason": "max_output_tokens"}}  # fmt: skip
    assert completion(incomplete, "up").finish_reason == "length"
    with pytest.raises(UpstreamError):
        completion({"id": "resp_1"}, "up")


def line(event: dict) -> bytes:
    return b"data: " + json.dumps(event).encode()


def test_a_stream_passes_its_lines_and_is_read_for_its_text_and_usage():
    reads = [
        [b"event: response.created", line({"type": "response.created",
                                           "response": {"id": "r", "model": "up"}}), b""],
        [line({"type": "response.output_text.delta", "delta": "Hel"}),
         line({"type": "response.output_text.delta", "delta": "lo"})],
        [line({"type": "response.completed", "response": {**ANSWER, "output": []}}), b""],
    ]  # fmt: skip
    items = list(passed_chunks(reads, "up"))
    assert [type(item) for item in items] == [Passed, Chunk, Passed, Chunk, Chunk, Passed, Chunk]
    chunks = [item for item in items if type(item) is Chunk]
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage == Usage(9, 4, 5)
    assert b'"model": "asked"' in passed(reads[0], "asked") and b'"up"' not in passed(
        reads[0], "asked"
    )
    assert passed(reads[1], "asked") == b"".join(raw + b"\n" for raw in reads[1])


@pytest.mark.parametrize(
    "events",
    [
        [{"type": "response.failed", "response": {"error": {"message": "boom", "code": "x"}}}],
        [{"type": "error", "message": "boom", "code": "x"}],
        [{"type": "response.output_text.delta", "delta": "Hel"}],  # ended before completing
    ],
)
def test_a_stream_that_fails_or_stops_short_is_an_error(events):
    with pytest.raises(ProxyError):
        list(passed_chunks([[line(e) for e in events]], "up"))
