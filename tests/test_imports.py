"""Imports point down (api → dialects → generation → fleet → backends → plain values), as the
contracts in setup.cfg say; import-linter checks them, and an upward import breaks them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command;"
                           " lint_imports_command()", "--no-cache", "--config", "setup.cfg"],
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=120)


def test_the_import_contracts_are_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_them(tmp_path):
    shutil.copytree(ROOT / "proxy", tmp_path / "proxy",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    types = tmp_path / "proxy" / "types.py"
    types.write_text(types.read_text() + "\nfrom proxy.dialects import openai  # upward\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "proxy.types -> proxy.dialects" in result.stdout
