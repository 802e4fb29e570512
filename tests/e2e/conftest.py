"""Fixtures for the e2e tier: the tiny model and the tiny reranker, a folder for logs, the
program that runs the servers the proxy runs, and a garbage collection as each module ends
(the server kind is the root conftest's ``kind``)."""

from __future__ import annotations

import gc
import pathlib

import pytest

from .managed import Program, program_of
from .rerankmodel import write_reranker
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
def reranker(tmp_path_factory) -> pathlib.Path:
    """The tiny reranker GGUF (:mod:`.rerankmodel`), written once per session."""
    return write_reranker(tmp_path_factory.mktemp("rerank") / "tiny-reranker.gguf")


@pytest.fixture(scope="session")
def logs(tmp_path_factory) -> pathlib.Path:
    """A folder for the logs of every process the e2e tests start."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def program(kind) -> Program:
    """What runs the servers the proxy runs, of ``kind``: the llama-server binary
    (``llamacpp``), or the llama.cpp engine the xllamacpp wheel bundles (``bundled``)."""
    return program_of(kind)
