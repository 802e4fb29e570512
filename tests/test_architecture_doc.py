"""docs/architecture.md names the code it walks through: every file, folder, class and
function it names in code spans exists, so the page cannot drift from the code unseen; and
one word means one thing: no two classes in ``proxy/`` share a name."""

from __future__ import annotations

import ast
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "architecture.md").read_text()
SOURCES = {path: path.read_text() for path in (ROOT / "proxy").rglob("*.py")}
SPANS = re.findall(r"`([^`\n]+)`", PAGE)


def defined(name: str) -> bool:
    pattern = re.compile(
        rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]", re.M
    )
    return any(pattern.search(text) for text in SOURCES.values())


def files_named() -> list:
    """(path, the folders it is looked for in): a bare ``name.py`` in a row of the "Where
    things are" table is looked for in that row's folder, elsewhere in ``proxy/``; any path
    also from the project's root and from ``proxy/``."""
    named = []
    for line in PAGE.splitlines():
        row = re.match(r"\| `([^`]+)` \|", line)
        folders = [ROOT / folder.strip() for folder in row.group(1).split(",")] if row else []
        for span in re.findall(r"`([^`\n]+)`", line):
            if re.match(r"(?:[A-Z]+ )?/", span):
                continue  # a route, not a file
            for token in re.findall(r"[\w./-]+\.py\b|[\w.-]+/(?:[\w-]+/)*", span):
                named.append((token, folders or [ROOT / "proxy"]))
    return named


@pytest.mark.parametrize(
    ("token", "folders"), files_named(), ids=[token for token, _ in files_named()]
)
def test_every_file_and_folder_it_names_exists(token, folders):
    places = [
        ROOT / token,
        ROOT / "proxy" / token,
        *(folder / token for folder in folders),
        *(
            found
            for folder in folders
            if folder.is_dir()
            for found in folder.rglob(token.split("/")[-1] or "*")
            if token.endswith(".py")
        ),
    ]
    assert any(place.exists() for place in places), token


CALLS = sorted({name for span in SPANS for name in re.findall(r"(\w+)\(", span)})
CLASSES = sorted({span for span in SPANS if re.fullmatch(r"[A-Z]\w*[a-z]\w*", span)})


@pytest.mark.parametrize("name", CALLS + CLASSES)
def test_every_function_and_class_it_names_is_defined(name):
    assert defined(name), f"docs/architecture.md names {name}, which the code does not define"


def test_the_walk_calls_serve_as_the_view_does():
    walk = re.search(r"`(serve\([^`]*\))`", PAGE).group(1)
    assert walk in SOURCES[ROOT / "proxy" / "api" / "anthropic.py"], walk


def named_modules() -> set:
    """The modules the page names: a ``name.py`` in a row of the "Where things are" table
    is its row's folders' module; a path elsewhere is taken from ``proxy/``."""
    named = set()
    for token, folders in files_named():
        for folder in (*folders, ROOT / "proxy"):
            path = (folder / token).resolve()
            if path.is_file():
                named.add(path.relative_to(ROOT).as_posix())
    return named


MODULES = sorted(
    path.relative_to(ROOT).as_posix()
    for path in (ROOT / "proxy").rglob("*.py")
    if path.name != "__init__.py"
)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_named(module):
    assert module in named_modules(), f"docs/architecture.md names {module} nowhere"


def classes_named_twice(root: Path) -> dict:
    """Each class name defined more than once under ``root/proxy`` (at any depth, private
    ones too), with the modules that define it."""
    where = defaultdict(list)
    for path in sorted((root / "proxy").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(path.relative_to(root).as_posix())
    return {name: paths for name, paths in where.items() if len(paths) > 1}


def test_no_two_classes_share_a_name():
    assert classes_named_twice(ROOT) == {}


@pytest.mark.parametrize(
    "module, line, name",
    [
        ("tools/session.py", "class Connection:\n    pass", "Connection"),
        ("access/sqlite.py", "def f():\n    class _Deadline:\n        pass", "_Deadline"),
    ],
)
def test_a_class_named_twice_is_caught(tmp_path, module, line, name):
    shutil.copytree(
        ROOT / "proxy", tmp_path / "proxy", ignore=shutil.ignore_patterns("__pycache__")
    )
    target = tmp_path / "proxy" / module
    target.write_text(target.read_text() + f"\n\n{line}  # a name taken\n")
    assert list(classes_named_twice(tmp_path)) == [name]
    assert f"proxy/{module}" in classes_named_twice(tmp_path)[name]


def glossary_names() -> list:
    """Each name the glossary's "in the code" column gives in a code span (a class, a
    function, an attribute as ``Class.name``, a module as ``module.name``), paths aside."""
    table = PAGE[PAGE.index("| word |") : PAGE.index("\n\n", PAGE.index("| word |"))]
    names = []
    for row in table.splitlines()[2:]:
        code = row.rstrip(" |").rsplit(" | ", 1)[-1]
        for span in re.findall(r"`([^`\n]+)`", code):
            if "/" in span or span.endswith(".py") or not re.fullmatch(r"[\w.]+", span):
                continue  # a path, a route, a flag or a value: checked where it is
            names.append(span)
    return sorted(set(names))


def attribute(name: str) -> bool:
    """Whether some class or instance in ``proxy/`` has ``name``: a method, a property, a
    field, or an attribute set on ``self``."""
    pattern = re.compile(
        rf"^\s+(?:def\s+{re.escape(name)}\b|{re.escape(name)}\s*[:=])|self\.{re.escape(name)}\s*[:=]",
        re.M,
    )
    return any(pattern.search(text) for text in SOURCES.values())


@pytest.mark.parametrize("span", glossary_names())
def test_every_name_the_glossary_gives_is_in_the_code(span):
    *owners, name = span.split(".")
    assert defined(name) or attribute(name), (
        f"the glossary names {span}, which the code does not define"
    )
    for owner in owners:
        module = any(path.stem == owner for path in SOURCES)
        assert defined(owner) or module, f"the glossary names {span}: no {owner} in the code"


def test_a_name_the_code_lacks_is_caught():
    assert not defined("applied") and not attribute("applied")
    assert not attribute("no_such_name_anywhere")
