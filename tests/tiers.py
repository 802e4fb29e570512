"""The tiers by backend: each test that runs a real server is marked with its kind, so that
``-m "e2e and powerinfer"`` (or ``llamacpp_2023``, ``llama_server``, ``bundled``, ``chatglm``)
runs one backend's tier whole.

A test parametrized by a server kind (the ``kind`` fixture, or a tuple holding one) is
marked with it; an e2e test that names none runs on current llama-server, which a
:class:`~tests.e2e.llama_server.LlamaServer` is unless told otherwise, unless its module
marks the backend it runs itself; the tests of the chatglm.cpp backend are marked
``chatglm``. Which worker runs what, and when, is :mod:`tests.schedule`'s.

Within a module, the tests of one kind run together, so that its module's servers of that
kind start once: pytest groups tests by a module fixture's parameter only where they share
its position in one list of parameters, and a test narrowed to some kinds
(``tests/e2e/marks.py``) has lists of its own.
"""

from __future__ import annotations

import pytest

# a server kind -> the marker of its backend
BACKENDS = {
    "powerinfer": "powerinfer",
    "llamacpp-2023": "llamacpp_2023",
    "llamacpp": "llama_server",
    "bundled": "bundled",
}
MARKERS = frozenset(BACKENDS.values()) | {"chatglm"}


def backends(item: pytest.Item) -> set:
    """The backend markers of ``item``'s parameters, and ``chatglm`` for that backend's
    tests."""
    callspec = getattr(item, "callspec", None)
    found = {BACKENDS[value] for value in _values(callspec.params.values() if callspec else ())}
    if item.module.__name__.startswith("tests.backends.chatglm"):
        found.add("chatglm")
    return found


def _rank(item: pytest.Item) -> int:
    """Where ``item``'s ``kind`` stands among the kinds (-1: it takes none)."""
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("kind") if callspec is not None else None
    return list(BACKENDS).index(kind) if kind in BACKENDS else -1


def _values(params) -> list:
    """Every string among ``params``, inside tuples too."""
    found = []
    for value in params:
        if isinstance(value, tuple):
            found += _values(value)
        elif isinstance(value, str) and value in BACKENDS:
            found.append(value)
    return found


def pytest_itemcollected(item: pytest.Item) -> None:
    found = backends(item)
    marked = {mark.name for mark in item.iter_markers() if mark.name in MARKERS}
    if not found and not marked and item.get_closest_marker("e2e"):
        found = {"llama_server"}
    for backend in found - marked:
        item.add_marker(getattr(pytest.mark, backend))


@pytest.hookimpl(trylast=True)  # after pytest's own grouping, which the sort keeps otherwise
def pytest_collection_modifyitems(items: list) -> None:
    modules: dict = {}
    items.sort(key=lambda item: (modules.setdefault(item.module, len(modules)), _rank(item)))
