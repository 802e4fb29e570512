"""The house style holds: ruff finds nothing to format and nothing to lint (ruff.toml), and
each check is shown catching what it is for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("check", [("format", "--check"), ("check",)], ids=["format", "lint"])
def test_the_tree_is_clean(check):
    result = ruff(*check, ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize(
    ("source", "check", "found"),
    [
        ("x = {'a':1}\n", ("format", "--check"), "would be reformatted"),
        ("import sys\nimport os\n\nprint(os, sys)\n", ("check",), "I001"),
        ("import os\n", ("check",), "F401"),
        ("def f(x=[]):\n    return x\n", ("check",), "B006"),
    ],
    ids=["unformatted", "unsorted imports", "unused import", "mutable default"],
)
def test_each_check_catches_what_it_is_for(tmp_path, source, check, found):
    (tmp_path / "ruff.toml").write_text((ROOT / "ruff.toml").read_text())
    (tmp_path / "module.py").write_text(source)
    result = ruff(*check, "module.py", cwd=tmp_path)
    assert result.returncode == 1 and found in result.stdout + result.stderr


def test_every_folder_of_modules_is_a_package():
    """setup.py installs the packages it finds: a folder of modules without an
    ``__init__.py`` imports here and is missing from the wheel."""
    folders = {path.parent for path in (ROOT / "proxy").rglob("*.py")}
    assert [f for f in sorted(folders) if not (f / "__init__.py").exists()] == []
