"""What operators write in files and flags: paths, sizes, TOML and model files.

Files as operators name them: paths as people type them, TOML as they write it, a model file by
a name that is cheap to take.

A path has ``~`` expanded, and a relative one is taken from the folder it was written for (the
working folder for a flag, the models file's own folder for what the file names, as docker-
compose and llama-swap read theirs). Each is resolved once, when the settings are read, so the
servers the proxy starts (which run in their log folder) find the same file. A hub reference
(``hf:org/repo``) is no path and stays as it is. A TOML file's mistakes are told in one line. A
model file of tens of gigabytes is named by its real path, size and modification time, never
read for it.

Sizes as operators write them (``20GiB``, ``512 MiB``, ``8g`` or bytes).
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Callable, Sequence

from proxy.config.hubref import is_hub_reference

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    import tomli as tomllib
import hashlib
import re

ExistsIn = Callable[[str], bool]  # whether a path (already joined to its folder) exists


def resolved(path: str, folder: str) -> str:
    """``path`` made absolute from ``folder`` (an empty one stays empty)."""
    if not path or is_hub_reference(path):
        return path
    return os.path.normpath(os.path.join(folder, os.path.expanduser(path)))


def names_a_file(value: str) -> bool:
    """Whether a chat template's value is a file rather than a preset's name: preset names
    (``chatml``, ``auto``) have no separator, dot or ``~`` in them."""
    return any(mark in value for mark in ("/", "\\", ".", "~"))


def resolved_template(value: str, folder: str) -> str:
    """A chat template's value: a file's path resolved, a preset's name as it is."""
    return resolved(value, folder) if names_a_file(value) else value


def resolved_arguments(
    arguments: Sequence[str], folder: str, exists: ExistsIn = os.path.exists
) -> tuple:
    """A server's arguments with each that names a file resolved: one written as a path
    (``./x``, ``../x``, ``~/x``), or one that is a file or folder in ``folder``. A flag
    (``-c``) or a number that no file is named after stays as it is."""
    return tuple(_argument(argument, folder, exists) for argument in arguments)


def resolved_command_line(line: str, folder: str, exists: ExistsIn = os.path.exists) -> str:
    """:func:`resolved_arguments` of a command line given as one string."""
    return shlex.join(resolved_arguments(shlex.split(line), folder, exists))


def _argument(argument: str, folder: str, exists: ExistsIn) -> str:
    if not argument or argument.startswith("-") or os.path.isabs(argument):
        return argument
    if argument.startswith(("./", "../", "~")) or exists(os.path.join(folder, argument)):
        return resolved(argument, folder)
    return argument


def read_toml(path: str, what: str, error: type = ValueError) -> dict:
    """The document at ``path``, or ``error`` saying why not (``what``: "models file"…)."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def digest(path: str) -> str:
    """A stable name for the file at ``path``: its real path, size and modification time
    hashed (a model file of tens of gigabytes is not read for it)."""
    status = os.stat(path)
    text = f"{os.path.realpath(path)}\x1f{status.st_size}\x1f{status.st_mtime_ns}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 10**3,
    "kib": 2**10,
    "m": 2**20,
    "mb": 10**6,
    "mib": 2**20,
    "g": 2**30,
    "gb": 10**9,
    "gib": 2**30,
    "t": 2**40,
    "tb": 10**12,
    "tib": 2**40,
}
SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """A size as operators write one: ``"20GiB"``, ``"512 MiB"``, ``"8g"`` or bytes."""
    match = SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if unit not in UNITS:
        raise ValueError(f"{text!r} is not a size (say 20GiB, 512MiB or a number of bytes)")
    return int(float(match.group(1)) * UNITS[unit])


def parse_memory(text: str) -> int:
    """``--max-memory``, read as a size."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ValueError(f"--max-memory: {exc}") from None


def no_unknown(table: dict, known: set, prefix: str, fail) -> None:
    """What every table of a models file is checked for first: no key it does not know, so
    a typo is named rather than read as the default (``fail(key, problem)`` names the
    file)."""
    unknown = sorted(set(table) - known)
    if unknown:
        raise fail(
            prefix + unknown[0], f"is not a known key; known here: {', '.join(sorted(known))}"
        )
