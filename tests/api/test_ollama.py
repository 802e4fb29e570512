"""Ollama's routes through the app: NDJSON streams, whole answers, its error shape, keys,
and what its clients ask of the models."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from proxy.config.catalog import Catalog, ModelSpec
from proxy.core.errors import QueueFullError
from proxy.fleet.fleet import Fleet
from proxy.fleet.health import Rotation
from proxy.fleet.replica import ManagedReplica, Replica
from proxy.fleet.servedmodel import ServedModel
from tests.fakes.backend import FakeBackend

CHAT = {"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}
KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"
models = ["qwen"]

[[keys]]
name = "ops"
key = "sk-ops"
manage = true
"""


def fleet_of(*names: str, backend=None, server=None):
    """A fleet of the named models on fake backends (each run by ``server``, when given);
    other names are not found."""
    specs = tuple(ModelSpec(name) for name in names)
    return Fleet(
        Catalog(specs, names[0], catch_all=False),
        [
            ServedModel(
                spec,
                (replica(spec.id, backend or FakeBackend(), server),),
                Rotation(lambda name: True),
            )
            for spec in specs
        ],
    )


def replica(name: str, backend, server) -> Replica:
    return Replica(f"fake-{name}", backend) if server is None else ManagedReplica(server, backend)


class Server:
    """A server the proxy runs, as a record of what it was told."""

    url = "fake-server"

    def __init__(self) -> None:
        self.told: list = []

    @contextmanager
    def using(self, measure=None):
        yield

    def prepare(self, key, pinned, new=False):
        return None

    def served(self, key, slot) -> None:
        """Nothing kept."""

    def ensure(self) -> None:
        self.told.append("ensure")

    def is_ready(self) -> bool:
        return True

    def stop(self, why: str = "") -> None:
        self.told.append("stop")

    def keep_for(self, seconds: float) -> None:
        self.told.append(f"keep {seconds:g}")


def ndjson(response) -> list:
    assert response.mimetype == "application/x-ndjson"
    text = response.get_data(as_text=True)
    assert text.endswith("\n") and "\n\n" not in text
    return [json.loads(line) for line in text.split("\n")[:-1]]


@pytest.fixture
def ollama(make_client):
    return make_client(fleet_of("qwen", "llama"))


def test_chat_streams_ndjson_by_default(ollama):
    lines = ndjson(ollama.post("/api/chat", json=CHAT))
    assert "".join(line["message"]["content"] for line in lines) == "Hello world"
    assert [line["done"] for line in lines] == [False, False, True]
    assert lines[-1]["done_reason"] == "stop" and lines[-1]["eval_count"] == 2


def test_a_whole_chat_and_a_whole_generate(ollama):
    answer = ollama.post("/api/chat", json={**CHAT, "stream": False})
    assert answer.mimetype == "application/json"
    assert answer.get_json()["message"]["content"] == "Hello world"
    generated = ollama.post(
        "/api/generate", json={"model": "llama:latest", "prompt": "hi", "stream": False}
    ).get_json()
    assert generated["response"] == "Hello world" and generated["model"] == "llama:latest"


def test_the_options_left_out_are_named(ollama):
    answer = ollama.post(
        "/api/chat", json={**CHAT, "stream": False, "options": {"num_ctx": 4096, "temperature": 0}}
    )
    assert answer.headers["x-oai-proxy-ignored-options"] == "num_ctx"


def test_errors_in_ollamas_shape(ollama):
    unknown = ollama.post("/api/chat", json={**CHAT, "model": "gpt-9"})
    assert unknown.status_code == 404 and "gpt-9" in unknown.get_json()["error"]
    bad = ollama.post("/api/chat", json={**CHAT, "format": "xml"})
    assert bad.status_code == 400 and set(bad.get_json()) == {"error"}
    assert "format" in bad.get_json()["error"]
    assert ollama.post("/api/show", json={}).get_json() == {"error": "'model' is required"}
    not_json = ollama.post("/api/generate", data=b"{", content_type="application/json")
    assert not_json.status_code == 400 and "error" in not_json.get_json()


def test_a_stream_that_fails_after_its_first_line_ends_with_an_error_line(make_client):
    client = make_client(
        fleet_of(
            "qwen",
            backend=FakeBackend(
                ("a", "b", "c"), error=QueueFullError("the queue is full"), fail_after=1
            ),
        )
    )
    lines = ndjson(client.post("/api/chat", json=CHAT))
    assert lines[0]["message"]["content"] == "a"
    assert lines[-1] == {"error": "the queue is full"}


def test_loading_a_model_that_the_proxy_does_not_run_answers_load(ollama):
    for path, body in (
        ("/api/generate", {"model": "qwen"}),
        ("/api/chat", {"model": "qwen", "messages": []}),
    ):
        answer = ollama.post(path, json={**body, "stream": False}).get_json()
        assert (answer["done"], answer["done_reason"]) == (True, "load")
    assert ollama.post("/api/generate", json={"model": "nope"}).status_code == 404


def test_embed_and_the_older_embeddings(ollama):
    embedded = ollama.post("/api/embed", json={"model": "qwen", "input": ["a", "bb"]})
    body = embedded.get_json()
    assert body["model"] == "qwen" and len(body["embeddings"]) == 2
    assert all(abs(sum(x * x for x in vector) - 1) < 1e-9 for vector in body["embeddings"])
    older = ollama.post("/api/embeddings", json={"model": "qwen", "prompt": "a"}).get_json()
    assert isinstance(older["embedding"], list) and older["embedding"]


def test_what_clients_ask_before_they_pick_a_model(ollama):
    assert ollama.get("/api/version").get_json()["version"]
    assert ollama.head("/api/version").status_code == 200
    names = [model["name"] for model in ollama.get("/api/tags").get_json()["models"]]
    assert names == ["qwen:latest", "llama:latest"]
    shown = ollama.post("/api/show", json={"model": "qwen:latest"}).get_json()
    assert shown["model_info"]["general.basename"] == "qwen:latest"
    assert shown["capabilities"] == ["completion"]
    assert [m["name"] for m in ollama.get("/api/ps").get_json()["models"]] == [
        "qwen:latest",
        "llama:latest",
    ]


@pytest.mark.parametrize("path", ["/api/push", "/api/create", "/api/copy"])
def test_model_management_but_pulls_says_the_models_file_decides(ollama, path):
    answer = ollama.post(path, json={"model": "qwen"})
    assert answer.status_code == 400
    assert "models file" in answer.get_json()["error"]
    assert "/api/pull" in answer.get_json()["error"]


@pytest.mark.parametrize(("method", "path"), [("post", "/api/pull"), ("delete", "/api/delete")])
def test_a_proxy_that_pulls_no_models_says_so(ollama, method, path):
    answer = getattr(ollama, method)(path, json={"model": "hf.co/org/repo"})
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "this proxy does not pull models"}


def test_keys_as_ollamas_clients_send_them(make_client, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    client = make_client(fleet_of("qwen", "llama"), keys=str(keys))
    alice = {"Authorization": "Bearer sk-alice"}
    assert client.get("/api/tags").status_code == 401
    assert client.get("/api/tags").get_json().keys() == {"error"}
    assert [m["name"] for m in client.get("/api/tags", headers=alice).get_json()["models"]] == [
        "qwen:latest"
    ]
    assert (
        client.post("/api/chat", json={**CHAT, "model": "llama"}, headers=alice).status_code == 403
    )
    assert client.post("/api/show", json={"model": "llama"}, headers=alice).status_code == 403
    assert client.post("/api/show", json={"name": "llama"}, headers=alice).status_code == 403
    assert (
        client.post("/api/chat", json={**CHAT, "stream": False}, headers=alice).status_code == 200
    )


@pytest.mark.parametrize(
    ("key", "obeyed"),
    [
        pytest.param("sk-alice", False, id="a-client-key"),
        pytest.param("sk-ops", True, id="a-managing-key"),
        pytest.param("admin", True, id="the-admin-key"),
    ],
)
def test_only_a_key_that_manages_servers_changes_their_keep_alive(
    make_client, tmp_path, key, obeyed
):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    server = Server()
    client = make_client(fleet_of("qwen", server=server), keys=str(keys), admin_key="admin")
    asked = [
        ("/api/generate", {"model": "qwen", "keep_alive": 0}, "unload"),
        ("/api/chat", {**CHAT, "keep_alive": "5m", "stream": False}, "keep 300"),
        ("/api/generate", {"model": "qwen", "prompt": "hi", "keep_alive": -1}, "keep -1"),
    ]
    for path, body, told in asked:
        server.told.clear()
        answer = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and answer.get_data()  # answered either way
        ignored = answer.headers.get("x-oai-proxy-ignored-fields")
        if obeyed:
            assert ignored is None and told.replace("unload", "stop") in server.told
        else:
            assert ignored == "keep_alive"
            assert not any(word in done for done in server.told for word in ("stop", "keep"))


def test_without_keys_any_client_changes_the_keep_alive(make_client):
    server = Server()
    client = make_client(fleet_of("qwen", server=server))
    answer = client.post("/api/generate", json={"model": "qwen", "keep_alive": 0})
    assert answer.get_json()["done_reason"] == "unload" and server.told == ["stop"]
    assert "x-oai-proxy-ignored-fields" not in answer.headers
