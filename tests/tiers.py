"""How the suite is split: among pytest-xdist's workers, and into tiers by backend.

A module's real servers are module fixtures, most parametrized by the server's kind. Each
(module, kind) is one ``xdist_group``: the tests that share a server run on one worker, one
after another, while the module's other kinds run on other workers (``--dist loadgroup``).
A test parametrized by a backend is also marked with it, so ``-m powerinfer`` (or
``llama_server``, ``llamacpp_2023``, ``bundled``) runs one backend's tier; ``chatglm`` marks
the tests of the in-process chatglm.cpp backend.
"""

from __future__ import annotations

import pytest

# a fixture's parameter (a server's kind or engine) -> the marker of its backend
BACKENDS = {
    "llamacpp": "llama_server",
    "llama-server": "llama_server",
    "bundled": "bundled",
    "powerinfer": "powerinfer",
    "llamacpp-2023": "llamacpp_2023",
}
SHARED_SCOPES = ("module", "package", "session")


def group(item: pytest.Item) -> str:
    """The module, and the values of the parameters its shared fixtures take."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return item.module.__name__
    fixtures = item._fixtureinfo.name2fixturedefs
    shared = [
        f"{name}={value}"
        for name, value in sorted(callspec.params.items(), key=lambda pair: pair[0])
        if name in fixtures and fixtures[name][-1].scope in SHARED_SCOPES
    ]
    return "@".join([item.module.__name__, *shared])


def backends(item: pytest.Item) -> set:
    """The backend markers of ``item``'s parameters, and ``chatglm`` for that backend's tests."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    found = {BACKENDS[value] for value in params if isinstance(value, str) and value in BACKENDS}
    if item.module.__name__.startswith("tests.backends.chatglm"):
        found.add("chatglm")
    return found


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
        for backend in backends(item):
            item.add_marker(getattr(pytest.mark, backend))
