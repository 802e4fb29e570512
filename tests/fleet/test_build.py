"""The key and headers a model's upstream expects: given in the models file, or read from the
environment variable it names, whose absence stops the proxy naming the variable."""

from __future__ import annotations

import pytest

from proxy.config.catalog import ModelSpec
from proxy.fleet.build import upstream_headers, upstream_key


def test_the_key_of_the_models_file():
    assert upstream_key(ModelSpec("big", upstream_key="sk-given")) == "sk-given"


def test_the_key_of_the_environment(monkeypatch):
    monkeypatch.setenv("BIG_BOX_KEY", "sk-from-env")
    assert upstream_key(ModelSpec("big", upstream_key_env="BIG_BOX_KEY")) == "sk-from-env"


def test_an_unset_variable_is_named(monkeypatch):
    monkeypatch.delenv("BIG_BOX_KEY", raising=False)
    with pytest.raises(ValueError, match="the environment variable BIG_BOX_KEY, which holds"):
        upstream_key(ModelSpec("big", upstream_key_env="BIG_BOX_KEY"))


def test_headers_of_the_models_file_and_of_the_environment(monkeypatch):
    monkeypatch.setenv("TEAM_TOKEN", "tok-1")
    spec = ModelSpec(
        "big",
        headers=(("HTTP-Referer", "https://a.example"),),
        headers_env=(("X-T", "TEAM_TOKEN"),),
    )
    assert upstream_headers(spec) == {"HTTP-Referer": "https://a.example", "X-T": "tok-1"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "is not set"), ("tok-1\r\nX-Injected: 1", "has a line break or other control character")],
)
def test_a_header_the_environment_cannot_give_is_named_never_its_value(monkeypatch, value, problem):
    monkeypatch.setenv("TEAM_TOKEN", value)
    with pytest.raises(ValueError) as refused:
        upstream_headers(ModelSpec("big", headers_env=(("X-T", "TEAM_TOKEN"),)))
    message = str(refused.value)
    assert message.startswith("the environment variable TEAM_TOKEN, which holds the header X-T")
    assert problem in message and "tok-1" not in message
