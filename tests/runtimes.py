"""Runtimes for the apps and fleets the tests build in-process."""

from __future__ import annotations

import os

from proxy.config.runtime import Runtime

# For fleets of external servers, which keep no files: anything written under it fails loudly.
NO_FILES = Runtime(cache_dir=os.devnull, environ=os.environ)


def runtime_in(folder) -> Runtime:
    """Files (usage, responses, server logs, saved caches) in ``folder``, the test's own."""
    return Runtime(cache_dir=str(folder), environ=os.environ)
