"""How the suite is split: among pytest-xdist's workers, and into tiers by backend.

CI runs the suite with ``--dist loadscope --no-loadscope-reorder``: each module goes to one
worker whole, so its module fixtures (the real servers it starts) start once, and modules
are handed out in the order collection leaves them. That order puts the e2e modules first,
the biggest first, then the hostile and live tiers, then the in-process tests, which fill
the last minutes of every worker.

A test parametrized by a backend is also marked with it, so ``-m powerinfer`` (or
``llama_server``, ``llamacpp_2023``, ``bundled``) runs one backend's tier; ``chatglm`` marks
the tests of the in-process chatglm.cpp backend.
"""

from __future__ import annotations

from collections import Counter

import pytest

# a fixture's parameter (a server's kind or engine) -> the marker of its backend
BACKENDS = {
    "llamacpp": "llama_server",
    "llama-server": "llama_server",
    "bundled": "bundled",
    "powerinfer": "powerinfer",
    "llamacpp-2023": "llamacpp_2023",
}
TIERS = ("e2e", "hostile", "live")  # the slowest first; what has none of these comes last


def backends(item: pytest.Item) -> set:
    """The backend markers of ``item``'s parameters, and ``chatglm`` for that backend's tests."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    found = {BACKENDS[value] for value in params if isinstance(value, str) and value in BACKENDS}
    if item.module.__name__.startswith("tests.backends.chatglm"):
        found.add("chatglm")
    return found


def tier(item: pytest.Item) -> int:
    """The rank of ``item``'s tier in :data:`TIERS` (their length: none of them)."""
    ranks = (rank for rank, name in enumerate(TIERS) if item.get_closest_marker(name))
    return next(ranks, len(TIERS))


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        for backend in backends(item):
            item.add_marker(getattr(pytest.mark, backend))
    sizes = Counter(item.module.__name__ for item in items)
    ranks: dict = {}
    for item in items:  # a module ranks with its slowest test's tier
        module = item.module.__name__
        ranks[module] = min(ranks.get(module, len(TIERS)), tier(item))
    # a stable sort: each module's tests stay together and in their own order
    items.sort(key=lambda item: (ranks[item.module.__name__], -sizes[item.module.__name__]))
