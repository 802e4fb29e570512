"""Marks for e2e tests that cannot apply to every server generation."""
from __future__ import annotations

import pytest


def only(*generations: str, why: str):
    """Run a test on ``generations`` only (the conftest's ``generation`` fixture), saying why."""
    def mark(test):
        test = pytest.mark.generations(why)(test)
        return pytest.mark.parametrize("generation", generations, indirect=True)(test)
    return mark
