"""Imports point down (serving → app → api → dialects | fleet → servers | access | tools →
backends → config → core → plain tools), as the contracts in setup.cfg say; import-linter
checks them, and an import that breaks one is caught: each contract is shown breaking below."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
            "--config",
            "setup.cfg",
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_are_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, line, contract, chain",
    [
        (
            "core/types.py",
            "from proxy.dialects import streaming",
            "Imports point down",
            "proxy.core.types -> proxy.dialects.streaming",
        ),
        (
            "config/runtime.py",
            "import proxy.fleet.fleet",
            "Imports point down",
            "proxy.config.runtime -> proxy.fleet.fleet",
        ),
        (
            "fleet/health.py",
            "import proxy.dialects.glm",
            "Imports point down",
            "proxy.fleet.health -> proxy.dialects.glm",
        ),
        (
            "dialects/streaming.py",
            "import proxy.core.generation",
            "A dialect knows the core's values",
            "proxy.dialects.streaming -> proxy.core.generation",
        ),
        (
            "dialects/glm.py",
            "import proxy.backends.base",
            "A dialect knows the core's values",
            "proxy.dialects.glm -> proxy.backends.base",
        ),
        (
            "backends/chatglm/translation.py",
            "import proxy.backends.servercpp.payload",
            "Each kind of backend stands alone",
            "proxy.backends.chatglm.translation -> proxy.backends.servercpp.payload",
        ),
        (
            "core/sse.py",
            "import flask",
            "Nothing below the API knows Flask",
            "proxy.core.sse -> flask",
        ),
        (
            "dialects/glm.py",
            "import llama_cpp",
            "The API and the dialects know no upstream",
            "proxy.dialects.glm -> llama_cpp",
        ),
    ],
)
def test_an_import_that_breaks_a_contract_is_caught(tmp_path, module, line, contract, chain):
    shutil.copytree(
        ROOT / "proxy", tmp_path / "proxy", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    target = tmp_path / "proxy" / module
    target.write_text(target.read_text() + f"\n{line}  # breaks a contract\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(contract), result.stdout[-2000:]
    assert chain in result.stdout
