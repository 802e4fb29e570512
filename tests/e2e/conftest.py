"""Fixtures for the e2e tier: the tiny model, a folder for logs, the server kind, the program
that runs managed servers, and a garbage collection as each module ends."""

from __future__ import annotations

import gc
import pathlib

import pytest

from .llama_server import KINDS, find_server
from .managed import Program
from .tinymodel import write_tiny_llama_gguf


@pytest.fixture(scope="module", autouse=True)
def leaks_reported_here():
    """Collect garbage as each module ends, so a socket a client library left open is
    reported against that module's tests, not a later module's on the same worker."""
    yield
    gc.collect()


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


@pytest.fixture(scope="module", params=["llama-server", "bundled"])
def program(request) -> Program:
    """The llama-server binary, or the llama.cpp engine the xllamacpp wheel bundles."""
    if request.param == "bundled":
        return Program(("--llama-server", "bundled"), {})
    binary = find_server("llamacpp")
    return Program(("--llama-server", str(binary.path)), binary.env)
