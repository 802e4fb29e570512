"""Which server kinds an e2e test runs on, and why (CONTRIBUTING.md, "What each tier proves").

The ``kind`` fixture (``tests/conftest.py``) runs a test on every generation of server.cpp:
PowerInfer's, llama.cpp's of 2023 and current llama-server. A test whose claim is not a
generation's behaviour narrows it, saying why: a client's behaviour is proven once, on
current llama-server; the bundled engine (a current llama-server run from the ``xllamacpp``
wheel) is added where it differs: its own chat layer, and the servers the proxy runs.
"""

from __future__ import annotations

import pytest

CURRENT = "llamacpp"
BUNDLED = "bundled"
OLD = ("powerinfer", "llamacpp-2023")

CLIENT = "a client's behaviour, proven once on current llama-server"
API = "an API's translation is the same on every server: the old ones get a smoke test"
PROXY = "the proxy's own behaviour, whatever server is behind it"
MANAGED = "servers the proxy runs: llama-server's binary and the bundled engine"


def only(*kinds: str, why: str):
    """Run a test on ``kinds`` only, saying why."""

    def mark(test):
        for each in reversed(on(*kinds, why=why)):
            test = each(test)
        return test

    return mark


def on(*kinds: str, why: str) -> list:
    """The marks that run a test, or a whole module as its ``pytestmark``, on ``kinds`` only
    (every test of such a module takes the ``kind`` fixture, in itself or its fixtures)."""
    return [pytest.mark.kinds(why), pytest.mark.parametrize("kind", kinds, indirect=True)]
