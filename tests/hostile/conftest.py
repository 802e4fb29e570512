"""Fixtures of the hostile tier: a gateway with tenants in front of a real current
llama-server, and the tiny model it serves. What the tier tests is the proxy's own code,
whatever server is behind it."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import pytest

from tests.e2e.llama_server import LlamaServer
from tests.e2e.tinymodel import write_tiny_llama_gguf
from tests.processes import ProxyProcess

ADMIN = "admin-secret"
ALICE = "sk-alice"  # may use "tiny" only; other models do not exist for her
BOB = "sk-bob"  # may use "secret" only
KEYS = f"""
[[keys]]
name = "alice"
key = "{ALICE}"
models = ["tiny"]
hidden = true

[[keys]]
name = "bob"
key = "{BOB}"
models = ["secret"]
"""


@dataclass(frozen=True)
class Gateway:
    """The proxy of the hostile tests and what it was started with."""

    proxy: ProxyProcess
    server: LlamaServer

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def pid(self) -> int:
        return self.proxy.process.pid


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> pathlib.Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("model") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def logs(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def gateway(tiny, logs, tmp_path_factory):
    """The tiny model on llama-server, served as ``tiny`` and as ``secret`` behind the keys
    of two tenants and the admin key."""
    folder = tmp_path_factory.mktemp("gateway")
    with LlamaServer(tiny, logs / "hostile.log", parallel=2, ctx_size=4096) as server:
        (folder / "models.toml").write_text(
            f'[models.tiny]\nupstreams = ["{server.url}"]\n'
            f'[models.secret]\nupstreams = ["{server.url}"]\n'
        )
        (folder / "keys.toml").write_text(KEYS)
        with ProxyProcess(
            server.url,
            logs / "proxy-hostile.log",
            args=[
                "--config",
                str(folder / "models.toml"),
                "--keys",
                str(folder / "keys.toml"),
                "--admin-key",
                ADMIN,
            ],
        ) as proxy:
            yield Gateway(proxy, server)
