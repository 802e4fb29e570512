"""What a stream renderer's payloads say: a payload is a dict, or the bytes of an event its
renderer framed itself (a token's text written into an event's bytes); tests read both as
the JSON object a client would read."""

from __future__ import annotations

import json

from proxy.core.sse import COMMENT


def decoded(payload: object) -> object:
    """A dict as it is; framed bytes as the one JSON object of their event or line, checked
    to be framed as the encoders frame it (an ``event:`` line naming the payload's type)."""
    if payload is COMMENT or not isinstance(payload, bytes):
        return payload
    if payload.startswith(b"event: "):
        name, data = payload.split(b"\n", 1)
        assert data.startswith(b"data: ") and data.endswith(b"\n\n"), payload
        body = json.loads(data[6:])
        assert name[7:].decode() == body["type"], payload
        return body
    if payload.startswith(b"data: "):
        assert payload.endswith(b"\n\n") and payload.count(b"\n") == 2, payload
        return json.loads(payload[6:])
    assert payload.endswith(b"\n") and payload.count(b"\n") == 1, payload  # an NDJSON line
    return json.loads(payload)


def payloads(writes) -> list:
    """Every payload of a renderer's writes, decoded, in order."""
    return [decoded(payload) for write in writes for payload in write]


def accumulate(events: list) -> dict:
    """Put a message together as Anthropic's SDK does, checking the order as it goes."""
    assert events[0]["type"] == "message_start"
    message = dict(events[0]["message"])
    message["content"] = []
    partial = {}
    for event in events[1:]:
        kind = event["type"]
        if kind == "content_block_start":
            assert event["index"] == len(message["content"])  # contiguous, from 0
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop":
            if event["index"] in partial:
                message["content"][event["index"]]["input"] = json.loads(partial[event["index"]])
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"] = {**message["usage"], **event["usage"]}
    assert events[-1] == {"type": "message_stop"}
    return message
