"""The README stays true: every setting is in its table, with its variable and default."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from proxy.config import Settings, env_name, flag_name

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [spec.name for spec in fields(Settings)])
def test_every_setting_is_documented(name):
    rows = [line for line in README.splitlines() if line.startswith(f"| `{flag_name(name)}` |")]
    assert len(rows) == 1, f"{flag_name(name)} is missing from the README's settings table"
    assert f"`{env_name(name)}`" in rows[0]


def test_setup_commands_are_there():
    assert "pip install . && oai-proxy --llama-api" in README
    assert "bash .ci/run" in README
