"""The keys file and the models file read again while the proxy serves, through the admin
API: keys added and revoked at once, a file that does not parse changing nothing."""

from __future__ import annotations

import pytest

from proxy.app import create_app
from proxy.config.settings import Settings
from tests.fakes.servercpp import FakeServerCpp
from tests.runtimes import runtime_in

KEYS = """# the team

[[keys]]
name = "alice"
key = "sk-alice"
"""
MODELS = """
[models.tiny]
upstreams = ["{0}"]
"""
ADMIN = {"Authorization": "Bearer admin"}


@pytest.fixture
def served(tmp_path):
    with FakeServerCpp("llamacpp", n_slots=2) as fake:
        keys, models = tmp_path / "keys.toml", tmp_path / "models.toml"
        keys.write_text(KEYS)
        models.write_text(MODELS.format(fake.url))
        app = create_app(
            Settings.of(
                config=str(models),
                keys=str(keys),
                admin_key="admin",
                usage_db=str(tmp_path / "usage.sqlite3"),
                responses_db=str(tmp_path / "responses.sqlite3"),
                exchanges_db=str(tmp_path / "exchanges.sqlite3"),
            ),
            runtime_in(tmp_path),
        )
        yield app.test_client(), keys, models, fake
        app.extensions["proxy"].router.close()


def asks(client, key: str, model: str = "tiny") -> int:
    body = {"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
    return client.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ).status_code


def test_a_reload_serves_the_keys_and_models_the_files_say_now(served):
    client, keys, models, fake = served
    keys.write_text(KEYS.replace('"alice"', '"bob"').replace("sk-alice", "sk-bob"))
    models.write_text(MODELS.format(fake.url) + MODELS.replace("tiny", "small").format(fake.url))
    reloaded = client.post("/admin/reload", headers=ADMIN)
    assert reloaded.status_code == 200
    assert reloaded.get_json() == {"keys": ["bob"], "models": ["tiny", "small"]}
    assert asks(client, "sk-alice") == 401 and asks(client, "sk-bob") == 200
    assert asks(client, "sk-bob", "small") == 200


@pytest.mark.parametrize(
    "which, text, says",
    [
        ("keys", "[[keys]]\nname = ", "not valid TOML"),
        ("keys", '[[keys]]\nname = "x"\nkey = "k"\ncolour = 1\n', "unknown field 'colour'"),
        ("models", "[models.tiny]\nupstreams = 3\n", "upstreams"),
    ],
)
def test_a_file_that_does_not_parse_changes_nothing_and_says_why(served, which, text, says):
    client, keys, models, _ = served
    (keys if which == "keys" else models).write_text(text)
    refused = client.post("/admin/reload", headers=ADMIN)
    assert refused.status_code == 400
    assert "nothing reloaded" in refused.get_json()["error"]["message"]
    assert says in refused.get_json()["error"]["message"]
    assert asks(client, "sk-alice") == 200


def test_keys_are_added_and_revoked_through_the_admin_api_and_kept_in_the_file(served):
    client, keys, _, _ = served
    added = client.post("/admin/keys", json={"name": "carol", "priority": 10}, headers=ADMIN)
    assert added.status_code == 201
    secret = added.get_json()["key"]
    assert secret.startswith("sk-") and asks(client, secret) == 200
    assert keys.read_text().startswith(KEYS) and 'name = "carol"' in keys.read_text()
    listed = client.get("/admin/keys", headers=ADMIN).get_json()["keys"]
    assert [(key["name"], key["priority"]) for key in listed] == [("alice", 128), ("carol", 10)]
    assert client.delete("/admin/keys/alice", headers=ADMIN).get_json() == {"revoked": "alice"}
    assert asks(client, "sk-alice") == 401 and asks(client, secret) == 200
    assert "alice" not in keys.read_text() and "# the team" in keys.read_text()


@pytest.mark.parametrize(
    "method, path, body, status, says",
    [
        ("delete", "/admin/keys/nobody", None, 404, "no key named 'nobody'"),
        ("post", "/admin/keys", {"name": "alice"}, 400, "the name is used twice"),
        ("post", "/admin/keys", {"name": "x", "weight": 0}, 400, "'weight'"),
        ("post", "/admin/keys", ["x"], 400, "a JSON object"),
        ("delete", "/admin/keys/alice", None, 400, "one or more [[keys]]"),
    ],
)
def test_a_change_that_cannot_be_made_says_why_and_leaves_the_file(
    served, method, path, body, status, says
):
    client, keys, _, _ = served
    answer = getattr(client, method)(path, json=body, headers=ADMIN)
    assert answer.status_code == status and says in answer.get_json()["error"]["message"]
    assert keys.read_text() == KEYS and asks(client, "sk-alice") == 200


def test_only_the_admin_key_changes_keys(served):
    client, _, _, _ = served
    for key in ("sk-alice", "wrong"):
        headers = {"Authorization": f"Bearer {key}"}
        assert client.post("/admin/keys", json={"name": "x"}, headers=headers).status_code == 401
        assert client.post("/admin/reload", headers=headers).status_code == 401
