"""The README stays true: every setting is in its table, with its variable and default."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from proxy.config.settings import Settings, env_name, flag_name

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("spec", fields(Settings), ids=lambda spec: spec.name)
def test_every_setting_is_documented(spec):
    flag = flag_name(spec.name)
    rows = [line for line in README.splitlines() if line.startswith(f"| `{flag}` |")]
    assert len(rows) == 1, f"{flag} is missing from the README's settings table"
    default = " ".join(spec.default) if isinstance(spec.default, tuple) else str(spec.default)
    shown = (default or "(empty)" if not isinstance(spec.default, tuple)
             else default or "(none)").replace("|", "\\|")
    assert f"`{env_name(spec.name)}` | `{shown}` |" in rows[0]


def test_setup_commands_are_there():
    assert "pip install . && oai-proxy --model path/to/model.gguf" in README
    assert "pip install . && oai-proxy --llama-api" in README
    assert "bash .ci/run" in README
