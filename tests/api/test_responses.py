"""OpenAI's Responses API through Flask's test client: create, stream, continue, retrieve,
delete, list input items and count tokens, per key."""

from __future__ import annotations

import json

import pytest

from proxy.core.errors import UpstreamError
from tests.fakes.backend import FakeBackend

KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"

[[keys]]
name = "bob"
key = "sk-bob"
"""
ALICE = {"Authorization": "Bearer sk-alice"}
BOB = {"Authorization": "Bearer sk-bob"}


def events(body: bytes) -> list:
    found = []
    for block in body.decode().split("\n\n")[:-1]:
        event, data = block.split("\n")
        payload = json.loads(data[len("data: ") :])
        assert event == "event: " + payload["type"]
        found.append(payload)
    return found


@pytest.fixture
def keyed(make_client, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    return make_client(keys=str(keys))


@pytest.mark.parametrize("path", ["/v1/responses", "/responses"])
def test_a_whole_response(client, backend, path):
    body = client.post(
        path, json={"model": "local", "input": "hi", "prompt_cache_key": "thread-7"}
    ).get_json()
    assert body["id"].startswith("resp_") and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "Hello world"
    assert body["usage"]["input_tokens"] == 5 and body["usage"]["output_tokens"] == 2
    assert backend.requests[0].conversation == "thread-7"


def test_a_streamed_response_ends_completed(client):
    response = client.post("/v1/responses", json={"input": "hi", "stream": True})
    assert response.mimetype == "text/event-stream"
    found = events(response.data)
    assert [e["sequence_number"] for e in found] == list(range(len(found)))
    assert found[-1]["type"] == "response.completed"
    assert found[-1]["response"]["output"][0]["content"][0]["text"] == "Hello world"


def test_a_failure_after_the_first_byte_is_response_failed(make_client):
    backend = FakeBackend(error=UpstreamError("the server died"), fail_after=1)
    found = events(
        make_client(backend).post("/v1/responses", json={"input": "hi", "stream": True}).data
    )
    assert found[-1]["type"] == "response.failed"
    assert found[-1]["response"]["error"]["message"] == "the server died"


def test_continuing_a_stored_response(keyed, make_client):
    first = keyed.post(
        "/v1/responses", json={"input": "hi", "prompt_cache_key": "t"}, headers=ALICE
    ).get_json()
    follow = keyed.post(
        "/v1/responses",
        json={"input": "and?", "previous_response_id": first["id"], "stream": True},
        headers=ALICE,
    )
    last = events(follow.data)[-1]["response"]
    assert last["previous_response_id"] == first["id"]
    stored = keyed.get(f"/v1/responses/{last['id']}", headers=ALICE).get_json()
    assert stored == last


def test_the_conversation_reaches_the_model(make_client, backend, tmp_path):
    client = make_client()
    first = client.post(
        "/v1/responses",
        json={"input": "hi", "instructions": "Rules.", "prompt_cache_key": "thread-1"},
    ).get_json()
    client.post("/v1/responses", json={"input": "and?", "previous_response_id": first["id"]})
    sent = backend.requests[-1]
    assert [(m.role, m.content) for m in sent.messages] == [
        ("user", "hi"),
        ("assistant", "Hello world"),
        ("user", "and?"),
    ]
    assert sent.conversation == "thread-1"  # the conversation keeps its placement


def test_nothing_is_kept_without_store(client):
    body = client.post("/v1/responses", json={"input": "hi", "store": False}).get_json()
    assert client.get(f"/v1/responses/{body['id']}").status_code == 404


def test_one_key_never_reads_anothers_responses(keyed):
    mine = keyed.post("/v1/responses", json={"input": "hi"}, headers=ALICE).get_json()["id"]
    for call in (
        lambda: keyed.get(f"/v1/responses/{mine}", headers=BOB),
        lambda: keyed.delete(f"/v1/responses/{mine}", headers=BOB),
        lambda: keyed.get(f"/v1/responses/{mine}/input_items", headers=BOB),
        lambda: keyed.post(
            "/v1/responses", headers=BOB, json={"input": "x", "previous_response_id": mine}
        ),
    ):
        response = call()
        assert response.status_code == 404
        assert mine in response.get_json()["error"]["message"]
    assert keyed.get(f"/v1/responses/{mine}", headers=ALICE).status_code == 200
    assert keyed.get(f"/v1/responses/{mine}").status_code == 401


def test_delete(client):
    id = client.post("/v1/responses", json={"input": "hi"}).get_json()["id"]
    assert client.delete(f"/v1/responses/{id}").get_json() == {
        "id": id,
        "object": "response.deleted",
        "deleted": True,
    }
    assert client.get(f"/v1/responses/{id}").status_code == 404
    assert client.delete(f"/v1/responses/{id}").status_code == 404


def test_input_items_page_by_page(client):
    items = [
        {"type": "message", "role": "user", "content": f"n{n}", "id": f"msg_{n}"} for n in range(5)
    ]
    id = client.post("/v1/responses", json={"input": items}).get_json()["id"]
    page = client.get(f"/v1/responses/{id}/input_items?limit=2").get_json()
    assert [item["id"] for item in page["data"]] == ["msg_4", "msg_3"]
    assert (page["object"], page["first_id"], page["last_id"], page["has_more"]) == (
        "list",
        "msg_4",
        "msg_3",
        True,
    )
    rest = client.get(f"/v1/responses/{id}/input_items?order=asc&after=msg_1").get_json()
    assert [item["id"] for item in rest["data"]] == ["msg_2", "msg_3", "msg_4"]
    assert not rest["has_more"]
    assert client.get(f"/v1/responses/{id}/input_items?limit=0").status_code == 400


def test_input_tokens(client):
    body = client.post(
        "/v1/responses/input_tokens", json={"model": "m", "input": "hello", "instructions": "Hi."}
    ).get_json()
    assert body == {"object": "response.input_tokens", "input_tokens": len("Hi.hello")}


def test_tools_only_its_client_runs_are_named_in_a_header(client, backend):
    tools = [
        {"type": "function", "name": "f", "parameters": {"type": "object"}},
        {"type": "local_shell"},
        {"type": "namespace", "name": "agents", "tools": []},
    ]
    response = client.post("/v1/responses", json={"input": "hi", "tools": tools})
    assert response.status_code == 200
    assert response.headers["x-oai-proxy-left-out-tools"] == "local_shell, namespace"


@pytest.mark.parametrize(
    "kind", ["web_search", "web_search_preview", "file_search", "mcp", "image_generation"]
)
def test_a_hosted_tool_is_refused_by_its_type_unless_the_operator_leaves_it_out(make_client, kind):
    hosted = {"type": kind, "server_label": "fs"} if kind == "mcp" else {"type": kind}
    body = {"input": "hi", "tools": [{"type": "function", "name": "f"}, hosted]}
    refused = make_client().post("/v1/responses", json=body)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["param"] == "tools"
    assert repr(kind) in refused.get_json()["error"]["message"]
    dropped = make_client(hosted_tools="drop").post("/v1/responses", json=body)
    assert dropped.status_code == 200
    assert dropped.headers["x-oai-proxy-left-out-tools"] == kind


def test_bad_input_is_an_openai_400_naming_the_field(client):
    response = client.post(
        "/v1/responses",
        json={"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == "input[0].content[0].image_url"
