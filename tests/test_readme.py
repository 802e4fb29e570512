"""The README and docs stay true: the set-up commands, every setting in the settings table with
its variable and default, every flag and models-file example they show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from proxy.config.flags import env_name, flag_name
from proxy.config.modelsfile import parse_catalog
from proxy.config.settings import setting_fields

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTINGS = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
DOCS = [README, *(path.read_text(encoding="utf-8") for path in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("spec", [spec for _, spec in setting_fields()], ids=lambda spec: spec.name)
def test_every_setting_is_documented(spec):
    flag = flag_name(spec.name)
    rows = [line for line in SETTINGS.splitlines() if line.startswith(f"| `{flag}` |")]
    assert len(rows) == 1, f"{flag} is missing from docs/settings.md"
    default = " ".join(spec.default) if isinstance(spec.default, tuple) else str(spec.default)
    shown = (
        default or "(empty)" if not isinstance(spec.default, tuple) else default or "(none)"
    ).replace("|", "\\|")
    assert f"`{env_name(spec.name)}` | `{shown}` |" in rows[0]


def test_setup_commands_are_there():
    assert "pip install . && oai-proxy --model smol.gguf" in README
    assert "oai-proxy --model hf:ggml-org/gemma-3-1b-it-GGUF:Q4_K_M" in README
    assert "pip install . && oai-proxy --llama-api" in README
    assert "bash .ci/run" in README


def commands(text: str) -> list:
    """The ``oai-proxy`` command lines the README and docs show."""
    return [
        line[line.index("oai-proxy ") :] for line in text.splitlines() if "oai-proxy --" in line
    ]


@pytest.mark.parametrize("line", sorted({line for doc in DOCS for line in commands(doc)}))
def test_every_flag_shown_is_a_flag(line):
    known = {flag_name(spec.name) for _, spec in setting_fields()} | {"--help"}
    shown = re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", line.split("`")[0])
    assert shown and set(shown) <= known, f"{line}: {set(shown) - known} are not flags"


def models_files(text: str) -> list:
    """The models files (TOML blocks with a ``[models.…]`` table) a page shows."""
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    return [block for block in blocks if re.search(r"^\[models\.", block, flags=re.M)]


@pytest.mark.parametrize("block", [block for doc in DOCS for block in models_files(doc)])
def test_the_models_files_shown_are_valid(block):
    catalog = parse_catalog(tomllib.loads(block), "README")
    assert catalog.models
