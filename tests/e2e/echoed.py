"""The proxy in front of the tests' echo engine (:mod:`.servers.echo_upstream`), which keeps
what it is sent, with four keys: ``sk-alice`` granted one model, ``sk-bob`` granted only
``other``, ``sk-carol`` with a daily budget of tokens, ``sk-dave`` one of five US cents; and
what ``/admin/usage`` charged."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import requests

from tests.processes import ProxyProcess

from .refusing import EchoServer

KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"
models = ["{granted}"]

[[keys]]
name = "bob"
key = "sk-bob"
models = ["other"]

[[keys]]
name = "carol"
key = "sk-carol"
tokens_per_day = 100000

[[keys]]
name = "dave"
key = "sk-dave"
usd_per_day = 0.05
"""


@contextlib.contextmanager
def echoed(folder: Path, logs: Path, name: str, models: str, granted: str,
           args=()) -> Iterator[tuple]:  # fmt: skip
    """``(echo engine, proxy)``: ``models``, a models file whose ``{echo}`` is the engine's
    address; ``granted``, alice's model; ``args``, the proxy's own beside them."""
    with EchoServer(logs / f"echo-{name}.log") as echo:
        (folder / "models.toml").write_text(models.format(echo=echo.url))
        (folder / "keys.toml").write_text(KEYS.format(granted=granted))
        argv = ("--config", str(folder / "models.toml"), "--keys", str(folder / "keys.toml"),
                "--admin-key", "admin-key", *args)  # fmt: skip
        with ProxyProcess(echo.url, logs / f"proxy-{name}.log", args=argv) as proxy:
            yield echo, proxy


def emptied(served: tuple) -> EchoServer:
    """The echo engine of ``served`` (``(engine, proxy)``), what it kept forgotten."""
    engine, _ = served
    engine.clear()
    return engine


def charged(proxy: ProxyProcess, key: str, model: str) -> dict:
    """What ``/admin/usage`` charged ``key`` for ``model`` so far (``{}``: nothing)."""
    rows = requests.get(
        proxy.url + "/admin/usage", headers={"Authorization": "Bearer admin-key"}, timeout=10
    ).json()["usage"]
    return next((row for row in rows if (row["key"], row["model"]) == (key, model)), {})
