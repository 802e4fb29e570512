"""What the status pages and /health show each viewer."""

from __future__ import annotations

import json

import pytest

from proxy.access.keyring import KeySpec
from proxy.inspector.visibility import Viewer, health_seen, seen, viewer

SERVER = {
    "state": "failed",
    "url": "http://127.0.0.1:4001",
    "engine": "/opt/llama-server",
    "in_flight": 0,
    "ttl": 0.0,
    "idle_seconds": 0.0,
    "log": "/var/log/big.log",
    "memory": {"estimate": 100, "measured": None},
    "error": "could not start: /opt/llama-server --api-key SECRET",
}
STATUS = {
    "ok": False,
    "key_required": True,
    "time": 1.5,
    "models": [
        {
            "id": "tiny",
            "label": "tiny",
            "aliases": ["t"],
            "capabilities": ["completion", "tools"],
            "completion_tokens": 7,
            "replicas": [
                {
                    "url": "http://10.0.0.5:8080",
                    "generation": "llamacpp",
                    "served_model": "/models/tiny.gguf",
                    "slots": 2,
                    "slots_source": "reported",
                    "in_flight": 1,
                    "queued": 0,
                    "in_rotation": True,
                    "busy": 1,
                    "ok": True,
                }
            ],
        },
        {
            "id": "big",
            "label": "big",
            "aliases": [],
            "capabilities": ["image_generation"],
            "completion_tokens": 0,
            "replicas": [
                {
                    "url": "http://127.0.0.1:4001",
                    "generation": None,
                    "slots": None,
                    "in_rotation": True,
                    "busy": 0,
                    "queued": 0,
                    "ok": False,
                    "error": SERVER["error"],
                    "managed": SERVER,
                }
            ],
        },
    ],
    "history": {"tiny": [{"t": 1.0, "tokens_per_s": 2.0}], "big": []},
    "batches": [{"id": "batch_1", "owner": "alice", "models": ["tiny"], "answered": 3}],
}
TINY = {
    "id": "tiny",
    "label": "tiny",
    "aliases": ["t"],
    "capabilities": ["completion", "tools"],
    "completion_tokens": 7,
    "replicas": [
        {
            "replica": 1,
            "generation": "llamacpp",
            "ok": True,
            "in_rotation": True,
            "busy": 1,
            "queued": 0,
            "slots": 2,
        }
    ],
}
BIG = {
    "id": "big",
    "label": "big",
    "aliases": [],
    "capabilities": ["image_generation"],
    "completion_tokens": 0,
    "replicas": [
        {
            "replica": 1,
            "generation": None,
            "ok": False,
            "in_rotation": True,
            "busy": 0,
            "queued": 0,
            "slots": None,
            "managed": {
                "state": "failed",
                "in_flight": 0,
                "ttl": 0.0,
                "idle_seconds": 0.0,
                "memory": {"estimate": 100, "measured": None},
            },
        }
    ],
}
OVERALL = {"ok": False, "key_required": True, "time": 1.5, "batches": []}


def key(*models: str) -> KeySpec:
    return KeySpec("alice", b"sk-alice", models)


@pytest.mark.parametrize(
    ("admin", "spec", "keys_required", "expected"),
    [
        pytest.param(True, None, True, Viewer("admin"), id="admin"),
        pytest.param(True, key("tiny"), True, Viewer("admin"), id="admin-first"),
        pytest.param(False, key("tiny"), True, Viewer("key", frozenset({"tiny"})), id="a-key"),
        pytest.param(False, key(), True, Viewer("key"), id="a-key-of-every-model"),
        pytest.param(False, None, True, Viewer("anonymous", frozenset()), id="anonymous-keys-on"),
        pytest.param(False, None, False, Viewer("anonymous"), id="anonymous-no-keys"),
    ],
)
def test_who_looks(admin, spec, keys_required, expected):
    assert viewer(admin=admin, key=spec, keys_required=keys_required) == expected


@pytest.mark.parametrize(
    ("who", "models", "history"),
    [
        pytest.param(Viewer("anonymous", frozenset()), [], {}, id="anonymous-keys-on"),
        pytest.param(Viewer("anonymous"), [TINY, BIG], STATUS["history"], id="anonymous-no-keys"),
        pytest.param(
            Viewer("key", frozenset({"tiny"})),
            [TINY],
            {"tiny": STATUS["history"]["tiny"]},
            id="a-key-of-one-model",
        ),
        pytest.param(
            Viewer("key", frozenset({"big", "gone"})), [BIG], {"big": []}, id="a-key-of-another"
        ),
        pytest.param(Viewer("key"), [TINY, BIG], STATUS["history"], id="a-key-of-every-model"),
    ],
)
def test_a_viewer_without_the_admin_key_sees_its_models_and_their_load_alone(who, models, history):
    shown = seen(STATUS, who)
    assert shown == {**OVERALL, "models": models, "history": history, "viewer": who.kind}
    text = json.dumps(shown)
    for hidden in ("http://", "/models/", "/opt/", "/var/log", "SECRET", "error", "engine"):
        assert hidden not in text


def test_batches_and_whose_they_are_are_the_admins_unless_the_proxy_has_no_keys():
    open_door = {**STATUS, "key_required": False}
    assert seen(open_door, Viewer("anonymous"))["batches"] == STATUS["batches"]
    assert seen(STATUS, Viewer("key"))["batches"] == []


def test_the_admin_sees_everything():
    assert seen(STATUS, Viewer("admin")) == {**STATUS, "viewer": "admin"}


BODY = {
    "status": "unavailable",
    "backend": "fleet",
    "models": STATUS["models"],
    "error": "no replica can serve big",
}


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        pytest.param(Viewer("admin"), BODY, id="admin"),
        pytest.param(Viewer("key"), {"status": "unavailable"}, id="a-key"),
        pytest.param(Viewer("anonymous"), {"status": "unavailable"}, id="anonymous-no-keys"),
        pytest.param(
            Viewer("anonymous", frozenset()), {"status": "unavailable"}, id="anonymous-keys-on"
        ),
    ],
)
def test_health_tells_anyone_but_the_admin_only_whether_it_is_healthy(who, expected):
    assert health_seen(BODY, who) == expected
