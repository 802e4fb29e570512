"""``Server-Timing`` on every client API's answer, whole and streamed: the waits, the proxy's
own time, the first token and the whole, in the web's standard header, with the same figures
as the inspector keeps for a whole answer."""

from __future__ import annotations

import pytest

from tests.servertiming import as_kept, timing

ADMIN = {"Authorization": "Bearer admin-secret"}
SAID = [{"role": "user", "content": "hi"}]
ANSWERS = [
    ("/v1/chat/completions", {"messages": SAID}),
    ("/v1/chat/completions", {"messages": SAID, "stream": True}),
    ("/v1/completions", {"prompt": "hi"}),
    ("/v1/messages", {"max_tokens": 8, "messages": SAID}),
    ("/v1/messages", {"max_tokens": 8, "messages": SAID, "stream": True}),
    ("/v1/responses", {"input": "hi"}),
    ("/v1/responses", {"input": "hi", "stream": True}),
    ("/api/chat", {"model": "m", "stream": False, "messages": SAID}),
    ("/api/generate", {"model": "m", "prompt": "hi", "stream": True}),
    ("/chat", {"prompt": "hi"}),
    ("/v1/embeddings", {"input": "hi"}),
]
IDS = ["chat", "chat-stream", "completions", "messages", "messages-stream", "responses",
       "responses-stream", "ollama-chat", "ollama-generate", "glm", "embeddings"]  # fmt: skip


@pytest.mark.parametrize(("path", "body"), ANSWERS, ids=IDS)
def test_every_answer_tells_where_its_time_went(make_client, path, body):
    client = make_client()
    with client.post(path, json=body) as response:
        figures = timing(response.headers["Server-Timing"])
        response.get_data()
    assert response.status_code == 200
    assert list(figures) in (
        ["queue", "upstream", "proxy", "first-token", "total"],
        ["queue", "upstream", "proxy", "total"],  # an embedding has no first token
    )
    assert figures["proxy"] <= figures["total"]
    assert figures["queue"] + figures["upstream"] <= figures["total"]


def test_a_refusal_tells_its_time_too(make_client):
    response = make_client().post("/v1/chat/completions", json={"messages": "not a list"})
    assert response.status_code == 400
    assert list(timing(response.headers["Server-Timing"])) == ["queue", "upstream", "proxy",
                                                               "total"]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body"), [answer for answer in ANSWERS if not answer[1].get("stream")]
)
def test_a_whole_answers_timing_is_the_inspectors(make_client, path, body):
    client = make_client(admin_key="admin-secret", capture="on")
    with client.post(path, json=body) as response:
        figures = timing(response.headers["Server-Timing"])
        response.get_data()
    (brief,) = client.get("/admin/exchanges", headers=ADMIN).json["exchanges"]
    kept = client.get(f"/admin/exchanges/{brief['id']}", headers=ADMIN).json
    assert figures == as_kept(kept)
