"""Waiting in tests for something another thread or process will do."""

from __future__ import annotations

import time
from typing import Callable

import pytest


def wait_for(
    condition: Callable[[], bool], what: str = "the condition", timeout: float = 20
) -> None:
    """Poll ``condition`` until it holds; fail, naming ``what``, once ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.02)
