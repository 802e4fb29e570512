"""The key a model's upstream expects: given in the models file, or read from the
environment variable it names, whose absence stops the proxy naming the variable."""

from __future__ import annotations

import pytest

from proxy.config.catalog import ModelSpec
from proxy.fleet.build import upstream_key


def test_the_key_of_the_models_file():
    assert upstream_key(ModelSpec("big", upstream_key="sk-given")) == "sk-given"


def test_the_key_of_the_environment(monkeypatch):
    monkeypatch.setenv("BIG_BOX_KEY", "sk-from-env")
    assert upstream_key(ModelSpec("big", upstream_key_env="BIG_BOX_KEY")) == "sk-from-env"


def test_an_unset_variable_is_named(monkeypatch):
    monkeypatch.delenv("BIG_BOX_KEY", raising=False)
    with pytest.raises(ValueError, match="the environment variable BIG_BOX_KEY, which holds"):
        upstream_key(ModelSpec("big", upstream_key_env="BIG_BOX_KEY"))
