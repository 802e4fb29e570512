"""The keys file: what it may say, and what a mistake in it is told as."""

from __future__ import annotations

import pytest

from proxy.access.keyring import Keyring, KeySpec, load_keyring, owner_of, parse_keys, plain_keys

SECRET = "sk-very-secret"


def one(**fields) -> dict:
    return {"keys": [{"name": "alice", "key": SECRET, **fields}]}


@pytest.mark.parametrize(
    "data, names",
    [
        ({"keys": []}, "[[keys]]"),
        ({"keys": [{"name": "a", "key": "x"}], "other": 1}, "[[keys]]"),
        ({"keys": ["x"]}, "must be a table"),
        ({"keys": [{"key": SECRET}]}, "'name'"),
        (one(name=" "), "'name'"),
        (one(colour="red"), "unknown field 'colour'"),
        (one(key_env="X"), "exactly one of 'key' and 'key_env'"),
        ({"keys": [{"name": "alice"}]}, "exactly one of 'key' and 'key_env'"),
        (one(key=""), "'key' must be a non-empty string"),
        ({"keys": [{"name": "alice", "key_env": "UNSET_VARIABLE"}]}, "'key_env'"),
        (one(models="qwen"), "'models'"),
        (one(models=[1]), "'models'"),
        (one(hidden="yes"), "'hidden'"),
        (one(manage=1), "'manage' must be true or false"),
        (one(capture="on"), "'capture' must be true or false"),
        (one(requests_per_minute=-1), "'requests_per_minute'"),
        (one(requests_per_minute=True), "'requests_per_minute'"),
        (one(tokens_per_minute=1.5), "'tokens_per_minute'"),
        (one(weight=0), "'weight' must be a number above 0"),
        (one(weight="2"), "'weight'"),
        (one(priority=256), "'priority' must be a whole number from 0 (first) to 255"),
        (one(priority=-1), "'priority'"),
        (one(priority=1.5), "'priority'"),
        (one(max_concurrent=-2), "'max_concurrent'"),
        (one(request_priority=1), "'request_priority' must be true or false"),
        (one(usd_per_day=0), "'usd_per_day' must be US dollars, a number above 0"),
        (one(usd_per_day=-5), "'usd_per_day' must be US dollars"),
        (one(usd_per_month="5"), "'usd_per_month' must be US dollars"),
        (one(usd_per_month=True), "'usd_per_month' must be US dollars"),
        (one(usd_per_month=float("inf")), "'usd_per_month' must be US dollars"),
        (one(usd_per_day=0.0000001), "at least 0.000001"),
        (one(local_only="yes"), "'local_only' must be true or false"),
        (one(tools="fs"), "'tools' must be a list"),
        (one(tools=["fs", 1]), "'tools' must be a list"),
        (one(tools=["a b"]), "'tools' must be a list"),
        (one(tools=["fs."]), "'tools' must be a list"),
        (one(kinds="text"), "'kinds' must be a list"),
        (one(kinds=[]), "'kinds' must be a list"),
        (one(kinds=["pictures"]), "'kinds' must be a list of what the key may ask for"),
        (one(kinds=["sd.pictures"]), "'kinds' must be a list"),
        (one(kinds=[".image"]), "'kinds' must be a list"),
        (one(kinds=["image", 3]), "'kinds' must be a list"),
        ({"keys": [{"name": "a", "key": SECRET}, {"name": "a", "key": "other"}]}, "used twice"),
        ({"keys": [{"name": "a", "key": SECRET}, {"name": "b", "key": SECRET}]}, "same key value"),
        (one(name="admin"), "the name 'admin' is the proxy's own"),
        (one(name="anonymous"), "the name 'anonymous' is the proxy's own"),
    ],
)
def test_mistakes_name_the_field_and_never_the_secret(data, names):
    with pytest.raises(ValueError) as error:
        parse_keys(data, "keys.toml", {})
    assert names in str(error.value) and "keys.toml" in str(error.value)
    assert SECRET not in str(error.value)


def test_a_full_key():
    (key,) = parse_keys(
        one(
            models=["qwen"],
            hidden=True,
            requests_per_minute=60,
            tokens_per_minute=1000,
            manage=True,
            capture=True,
            weight=2,
            priority=0,
            max_concurrent=3,
            request_priority=True,
            usd_per_day=2,
            usd_per_month=12.5,
            local_only=True,
        ),
        "k",
        {},
    )
    assert key == KeySpec(
        "alice",
        SECRET.encode(),
        ("qwen",),
        True,
        60,
        1000,
        manage=True,
        capture=True,
        weight=2.0,
        priority=0,
        max_concurrent=3,
        request_priority=True,
        usd_per_day=2.0,
        usd_per_month=12.5,
        local_only=True,
    )
    assert key.limited and key.budgeted and key.models == ("qwen",)
    assert key.may_use("qwen") and not key.may_use("llama")


def test_a_key_manages_no_server_and_is_not_captured_unless_it_says_so():
    (key,) = parse_keys(one(), "k", {})
    assert not key.manage and not key.capture and key.may_use("anything")
    assert (key.weight, key.priority, key.max_concurrent, key.request_priority) == (
        1.0,
        128,
        0,
        False,
    )


def test_a_key_from_the_environment():
    (key,) = parse_keys(
        {"keys": [{"name": "bob", "key_env": "BOB_KEY"}]}, "k", {"BOB_KEY": "from-env"}
    )
    assert key.secret == b"from-env" and not key.limited and key.models == ()


def test_finding_a_key():
    ring = Keyring(plain_keys(["one", "two"]))
    assert ring.find(b"two").name == "key-2"
    assert ring.find(b"three") is None and ring.find(b"tw") is None
    assert not Keyring([])


@pytest.mark.parametrize(
    "text, says", [("[[keys]\n", "not valid TOML"), (None, "cannot read the keys file")]
)
def test_a_file_that_cannot_be_used(tmp_path, text, says):
    path = tmp_path / "keys.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=says):
        load_keyring(str(path), {})


@pytest.mark.parametrize(
    "grants, server, tool, runs",
    [
        ((), "fs", "read_file", False),
        ((), "fs", "", False),
        (("*",), "fs", "read_file", True),
        (("fs",), "fs", "read_file", True),
        (("fs",), "fs", "", True),
        (("fs",), "web", "web_search", False),
        (("fs.read_file",), "fs", "read_file", True),
        (("fs.read_file",), "fs", "write_file", False),
        (("fs.read_file",), "fs", "", True),  # some tool of it: the server is offered
        (("fs.read_file",), "fsx", "", False),
        (("web.web_search",), "web", "web_fetch", False),
    ],
)
def test_a_key_runs_the_hosted_tools_it_is_granted(grants, server, tool, runs):
    (key,) = parse_keys(one(tools=list(grants)), "keys.toml", {})
    assert key.may_run(server, tool) is runs


@pytest.mark.parametrize(
    "grants, model, kind, asks",
    [
        ((), "sd", "image", True),  # none given: every kind of every model
        (("text",), "cloud", "text", True),
        (("text",), "cloud", "image", False),
        (("text", "sd.image"), "sd", "image", True),
        (("text", "sd.image"), "cloud", "image", False),
        (("text", "sd.image"), "sd", "text", True),
        (("qwen2.5.text",), "qwen2.5", "text", True),  # a model's id may hold dots
        (("qwen2.5.text",), "qwen2", "text", False),
    ],
)
def test_a_key_asks_its_models_for_the_kinds_it_is_granted(grants, model, kind, asks):
    entry = one(kinds=list(grants)) if grants else one()
    (key,) = parse_keys(entry, "keys.toml", {})
    assert key.may_ask(model, kind) is asks


def test_a_key_given_bare_may_run_every_hosted_tool():
    (key,) = plain_keys(["one"])
    assert key.may_run("fs", "read_file") and key.may_run("web", "")


def test_a_mistake_names_the_line_its_key_begins_on(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(f'# the team\n[[keys]]\nname = "ops"\nkey = "sk-1"\n\n'
                    f'[[keys]]\nname = "admin"\nkey = "{SECRET}"\n')  # fmt: skip
    with pytest.raises(ValueError, match=r"key 'admin' \(line 6\): the name 'admin'"):
        load_keyring(str(path), {})


def test_what_a_key_owns_is_its_secrets_never_its_names():
    alice, again, renamed = (KeySpec(name, secret) for name, secret in (
        ("alice", b"sk-1"), ("alice", b"sk-2"), ("alicia", b"sk-1")))  # fmt: skip
    assert alice.owner == owner_of(b"sk-1") == renamed.owner != again.owner
    assert "alice" not in alice.owner and "sk-1" not in alice.owner
    assert Keyring([alice, again]).owned(again.owner) is again
    assert Keyring([alice]).owned(again.owner) is None
