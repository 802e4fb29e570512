"""Ollama's pull and delete, over a fake of what pulls: the lines Ollama's clients read, the
errors in Ollama's shape, and who may manage models."""

from __future__ import annotations

import hashlib

import pytest

from proxy.core.errors import InvalidRequestError, ModelNotFoundError, UpstreamError
from tests.api.test_ollama import KEYS, fleet_of, ndjson

FILES = (("m-Q4_K_M.gguf", b"model" * 100), ("mmproj-F16.gguf", b"eyes" * 10))


class FakePulls:
    """Pulls two files in two steps each, unless told to fail after the first."""

    def __init__(self, failure=None) -> None:
        self.failure = failure
        self.pulled: list = []
        self.deleted: list = []

    def check(self, name: str) -> None:
        if not name.startswith(("hf:", "hf.co/")):
            raise InvalidRequestError(f"{name!r} is no model on a hub", param="model")

    def pull(self, name: str, progress) -> str:
        for path, content in FILES:
            sha256 = hashlib.sha256(content).hexdigest()
            progress(path, sha256, len(content) // 2, len(content))
            if self.failure:
                raise self.failure
            progress(path, sha256, len(content), len(content))
        self.pulled.append(name)
        return name

    def delete(self, name: str) -> None:
        if name != "hf.co/org/repo:latest":
            raise ModelNotFoundError(name, ["hf.co/org/repo:latest"])
        self.deleted.append(name)


@pytest.fixture
def pulls() -> FakePulls:
    return FakePulls()


def test_a_pull_streams_ollamas_progress_lines(make_client, pulls):
    client = make_client(fleet_of("qwen"), pulls=pulls)
    lines = ndjson(client.post("/api/pull", json={"model": "hf.co/org/repo:Q4_K_M"}))
    first = hashlib.sha256(FILES[0][1]).hexdigest()
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[1] == {
        "status": f"pulling {first[:12]}",
        "digest": f"sha256:{first}",
        "total": 500,
        "completed": 250,
    }
    assert [line["completed"] for line in lines[1:5]] == [250, 500, 20, 40]
    assert [line["status"] for line in lines[5:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert pulls.pulled == ["hf.co/org/repo:Q4_K_M"]


def test_a_pull_not_streamed_answers_once_done(make_client, pulls):
    client = make_client(fleet_of("qwen"), pulls=pulls)
    answer = client.post("/api/pull", json={"name": "hf:org/repo", "stream": False})
    assert answer.status_code == 200 and answer.get_json() == {"status": "success"}
    assert pulls.pulled == ["hf:org/repo"]


@pytest.mark.parametrize(
    "body, error",
    [
        ({}, "'model' is required"),
        ({"model": 3}, "'model' must be a string"),
        ({"model": "qwen3:8b"}, "'qwen3:8b' is no model on a hub"),
        ({"model": "hf:o/r", "stream": "yes"}, "'stream' must be true or false"),
    ],
)
def test_a_pull_of_what_cannot_be_pulled_is_a_400_naming_it(make_client, pulls, body, error):
    answer = make_client(fleet_of("qwen"), pulls=pulls).post("/api/pull", json=body)
    assert answer.status_code == 400 and error in answer.get_json()["error"]
    assert pulls.pulled == []


def test_a_pull_that_fails_once_begun_ends_with_an_error_line(make_client):
    failing = FakePulls(UpstreamError("the hub refused to list hf:org/repo (HTTP 403)"))
    answer = make_client(fleet_of("qwen"), pulls=failing).post(
        "/api/pull", json={"model": "hf:o/r"}
    )
    lines = ndjson(answer)
    assert answer.status_code == 200 and lines[0] == {"status": "pulling manifest"}
    assert lines[-1] == {"error": "the hub refused to list hf:org/repo (HTTP 403)"}
    assert {"status": "success"} not in lines


def test_delete_removes_a_pulled_model(make_client, pulls):
    client = make_client(fleet_of("qwen"), pulls=pulls)
    answer = client.delete("/api/delete", json={"model": "hf.co/org/repo:latest"})
    assert answer.status_code == 200 and answer.get_data() == b""
    missing = client.delete("/api/delete", json={"name": "hf.co/org/other:latest"})
    assert missing.status_code == 404
    assert "'hf.co/org/other:latest' does not exist" in missing.get_json()["error"]
    assert pulls.deleted == ["hf.co/org/repo:latest"]


def test_only_a_key_that_may_manage_pulls_or_deletes(make_client, pulls, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS + '[[keys]]\nname = "bob"\nkey = "sk-bob"\n')
    client = make_client(fleet_of("qwen"), pulls=pulls, keys=str(keys), admin_key="admin-key")
    body = {"model": "hf.co/org/repo:latest", "stream": False}
    for method, path in (("post", "/api/pull"), ("delete", "/api/delete")):
        call = getattr(client, method)
        assert call(path, json=body).status_code == 401
        refused = call(path, json=body, headers={"Authorization": "Bearer sk-bob"})
        assert refused.status_code == 403 and "manage" in refused.get_json()["error"]
        assert call(path, json=body, headers={"Authorization": "Bearer sk-ops"}).status_code == 200
        assert (
            call(path, json=body, headers={"Authorization": "Bearer admin-key"}).status_code == 200
        )
    assert pulls.pulled == [body["model"]] * 2 and pulls.deleted == [body["model"]] * 2
