"""setup.cfg declares what the proxy imports: every third-party module a module of proxy/
imports comes from a distribution that install_requires names, or an extra for what is
optional (chatglm, redis), never one that only the tests or the benches bring. An install
from the wheel alone would otherwise miss it (.ci/oldest.sh runs one)."""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = configparser.ConfigParser()
OPTIONS.read(ROOT / "setup.cfg", encoding="utf-8")
NOT_THE_PROXYS = ("test", "bench")  # the extras that serve the checkout, not the proxy


def normalized(distribution: str) -> str:
    """A distribution's name as the package index compares it."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def named(lines: str) -> set:
    """The distributions a list of requirements names (their versions and markers aside)."""
    return {
        normalized(re.match(r"[A-Za-z0-9._-]+", line.strip()).group())
        for line in lines.splitlines()
        if line.strip()
    }


def declared() -> set:
    extras = OPTIONS["options.extras_require"]
    optional = [extras[name] for name in extras if name not in NOT_THE_PROXYS]
    return named(OPTIONS["options"]["install_requires"]).union(*map(named, optional))


def imported(source: str) -> set:
    """The top-level names of the modules ``source`` imports absolutely."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def third_party() -> list:
    """Every third-party module proxy/ imports, anywhere in a module (a lazy import too)."""
    names = set().union(
        *(imported(path.read_text(encoding="utf-8")) for path in (ROOT / "proxy").rglob("*.py"))
    )
    return sorted(names - set(sys.stdlib_module_names) - {"proxy"})


def test_imported_finds_every_absolute_import():
    source = "import a.b, c\nfrom d.e import f\nfrom . import g\ndef h():\n    import i\n"
    assert imported(source) == {"a", "c", "d", "i"}


def test_a_requirements_name_is_its_distribution():
    lines = 'flask >= 3.0\n    tomli >= 2.0; python_version < "3.11"\nPrometheus_Client\n'
    assert named(lines) == {"flask", "tomli", "prometheus-client"}


@pytest.fixture(scope="module")
def providers() -> dict:
    """The installed distributions that provide each top-level module."""
    return packages_distributions()


@pytest.mark.parametrize("module", third_party())
def test_every_module_the_proxy_imports_is_declared(module, providers):
    # one not installed here (tomli, which only Pythons before 3.11 need) goes by its own name
    found = providers.get(module) or [module]
    distributions = {normalized(name) for name in found}
    assert distributions & declared(), f"{module} comes from {distributions}: not in setup.cfg"
