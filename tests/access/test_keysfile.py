"""Keys added to and taken from a keys file's text, the rest of it kept as written."""

from __future__ import annotations

import pytest

from proxy.access.keyring import parse_keys
from proxy.access.keysfile import new_secret, with_key, without_key
from proxy.config.files import tomllib

FILE = """# the team's keys

[[keys]]
name = "alice"   # on call this week
key = "sk-alice"

# the nightly evals
[[keys]]
name = "evals"
key = "sk-evals"
priority = 255
"""


def names(text: str) -> list:
    return [key.name for key in parse_keys(tomllib.loads(text), "keys.toml", {})]


def test_a_key_added_goes_at_the_end_and_the_rest_stays_as_written():
    text = with_key(FILE, {"name": "bob", "key": "sk-bob", "models": ["qwen"], "weight": 2})
    assert text.startswith(FILE.rstrip("\n")) and names(text) == ["alice", "evals", "bob"]
    assert with_key("", {"name": "first", "key": "sk-1"}).startswith("[[keys]]\nname = ")


def test_a_key_taken_out_leaves_the_others_and_their_comments():
    text = without_key(FILE, "alice")
    assert names(text) == ["evals"]
    assert "# the team's keys" in text and "# the nightly evals" in text
    assert "on call" not in text
    text = without_key(FILE, "evals")  # and the comment right above it
    assert names(text) == ["alice"] and "nightly" not in text and "# the team's" in text


@pytest.mark.parametrize("name", ["bob", "key-1"])
def test_a_key_not_in_the_file_cannot_be_taken_out(name):
    with pytest.raises(KeyError):
        without_key(FILE, name)


def test_a_field_the_file_does_not_know_is_refused_and_secrets_are_new_each_time():
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        with_key(FILE, {"name": "x", "key": "sk-x", "colour": "red"})
    assert new_secret() != new_secret() and len(new_secret()) > 30
