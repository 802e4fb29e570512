"""Paths as people type them: ``~`` expanded, and a relative one taken from the folder it was
written for (the working folder for a flag, the models file's own folder for what the file
names, as docker-compose and llama-swap read theirs). Each is resolved once, when the settings
are read, so the servers the proxy starts (which run in their log folder) find the same file.
A hub reference (``hf:org/repo``) is no path and stays as it is."""

from __future__ import annotations

import os
import shlex
from typing import Callable, Sequence

from proxy.config.hubref import is_hub_reference

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
