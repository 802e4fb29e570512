"""Every error the suite provokes, read as it is made: what a client reads names no class of
the proxy's, nor an exception's (``BrokenChunks``, ``KeyError``), only the failure in words.

Each :class:`~proxy.core.errors.ProxyError` made during a test (an HTTP error, a stream's
error event, a tool's failure the model reads) is checked; a test that provokes one naming
an internal class fails at its teardown, naming the message."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import proxy
from proxy.core.errors import ProxyError


def internal_names() -> re.Pattern:
    """The classes of the proxy whose names are identifiers, not words (two capitals or
    more: ``ServerSession``, not ``Hold``), and any exception's name."""
    names = set()
    for module in pkgutil.walk_packages(proxy.__path__, "proxy."):
        if module.name.endswith(("__main__", "wsgi")):
            continue
        for name, found in inspect.getmembers(
            importlib.import_module(module.name), inspect.isclass
        ):
            if found.__module__.startswith("proxy.") and sum(c.isupper() for c in name) >= 2:
                names.add(name)
    return re.compile(r"\b(?:" + "|".join(sorted(names)) + r")\b|\b[A-Z]\w*(?:Error|Exception)\b")


@pytest.fixture(scope="session")
def provoked():
    """The messages of the errors made, that name an internal class, as they are made."""
    pattern, found = internal_names(), []
    original = ProxyError.__init__

    def made(self, message, *args, **kwargs):
        named = pattern.search(str(message))
        if named is not None:
            found.append((named.group(), str(message)))
        original(self, message, *args, **kwargs)

    ProxyError.__init__ = made
    yield found
    ProxyError.__init__ = original


@pytest.fixture(autouse=True)
def errors_in_words(provoked):
    before = len(provoked)
    yield
    named = provoked[before:]
    assert not named, f"an error a client reads names an internal class: {named}"
