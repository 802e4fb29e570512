"""Marks for e2e tests that cannot apply to every server kind."""

from __future__ import annotations

import pytest


def only(*kinds: str, why: str):
    """Run a test on ``kinds`` only (the conftest's ``kind`` fixture), saying why."""

    def mark(test):
        test = pytest.mark.kinds(why)(test)
        return pytest.mark.parametrize("kind", kinds, indirect=True)(test)

    return mark
