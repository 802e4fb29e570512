"""Fixtures for the e2e tier: the tiny model, a folder for logs, the server kind."""
from __future__ import annotations

import pathlib

import pytest

from .llama_server import KINDS
from .tinymodel import write_tiny_llama_gguf


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> pathlib.Path:
    """The tiny GGUF, written once per session."""
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("model") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def logs(tmp_path_factory) -> pathlib.Path:
    """A folder for the logs of every process the e2e tests start."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module", params=KINDS)
def kind(request) -> str:
    """The server.cpp kind a module's servers are of; every test runs on each."""
    return request.param

