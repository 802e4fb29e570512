"""Requests to the OpenAI routes through Flask's test client, and checks of their answers."""

from __future__ import annotations

import pytest

from tests.conftest import read_events

CHAT_BODY = {"messages": [{"role": "user", "content": "hi"}]}
COMPLETION_BODY = {"prompt": "Once"}

ROUTES = [
    pytest.param("/v1/chat/completions", CHAT_BODY, id="chat"),
    pytest.param("/chat/completions", CHAT_BODY, id="chat-no-v1"),
    pytest.param("/v1/completions", COMPLETION_BODY, id="completions"),
    pytest.param("/completions", COMPLETION_BODY, id="completions-no-v1"),
]
CHAT_ROUTES = [
    pytest.param("/v1/chat/completions", id="v1"),
    pytest.param("/chat/completions", id="no-v1"),
]
COMPLETION_ROUTES = [
    pytest.param("/v1/completions", id="v1"),
    pytest.param("/completions", id="no-v1"),
]
ERROR_KEYS = {"message", "type", "param", "code"}


def post(client, path, body, **fields):
    return client.post(path, json={**body, **fields})


def assert_openai_error(response, status, *, type=None, code=None):
    """Check the status and the ``{"error": {message, type, param, code}}`` shape."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    if type is not None:
        assert body["error"]["type"] == type
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def stream(client, path, body, **fields):
    """POST a streaming request; return the response and its decoded events."""
    response = post(client, path, body, stream=True, **fields)
    assert response.status_code == 200, response.data
    return response, read_events(response.data)


def chunks_of(events):
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    return events[:-1]
