"""What runs a model the proxy serves itself: the operator's llama-server, one on ``PATH``,
llama-cpp-python's own, or else the llama.cpp engine the ``xllamacpp`` wheel bundles; and
for a model that draws, the operator's sd-server, or one on ``PATH``.

A llama-cpp-python wheel built with its server installs ``llama-server`` beside its shared
libraries without a run path: it starts only with their folders on the loader's path.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from proxy.servers import engine

NAME = "llama-server"
SD_NAME = "sd-server"  # stable-diffusion.cpp's server
BUNDLED = "bundled"  # --llama-server bundled: the engine, even with a llama-server about


@dataclass(frozen=True)
class ServerProgram:
    """How to run llama-server: the command before its flags, the folders its libraries are
    in, and what the logs and pages call it."""

    command: tuple
    libraries: tuple = ()
    label: str = ""
    bundled: bool = False


def from_llama_cpp_python() -> Optional[tuple]:
    """``(binary, library folders)`` of an installed llama-cpp-python built with its server."""
    try:
        files = importlib.metadata.distribution("llama-cpp-python").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    located = [Path(f.locate()) for f in files]
    for path in located:
        if path.name == NAME and path.is_file() and os.access(path, os.X_OK):
            libraries = sorted(
                {f.parent for f in located if f.name.startswith("lib") and ".so" in f.name}
            )
            return path, tuple(libraries)
    return None


@dataclass(frozen=True)
class Installed:
    """How to find the packages that carry a llama-server: llama-cpp-python's binary and the
    bundled engine's version (``None``: not installed)."""

    wheel: Callable[[], Optional[tuple]] = from_llama_cpp_python
    engine: Callable[[], Optional[str]] = engine.version


def find_llama_server(configured: str = "", installed: Installed = Installed()) -> ServerProgram:
    """The program to run; a ``ValueError`` saying what to install when there is none."""
    if configured == BUNDLED:
        return _bundled(installed) or _missing(
            f"--llama-server {BUNDLED}: the xllamacpp wheel is not "
            f"installed (pip install xllamacpp)"
        )
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ValueError(f"--llama-server {configured}: no executable file there")
        wheel = installed.wheel()  # named by its path, it still needs its libraries
        if wheel and wheel[0].resolve() == path.resolve():
            return _binary(*wheel)
        return _binary(path)
    on_path = shutil.which(NAME)
    if on_path:
        return _binary(Path(on_path))
    found = installed.wheel()
    if found:
        return _binary(*found)
    return _bundled(installed) or _missing(
        f"no {NAME} found, and no bundled engine: pip install xllamacpp (wheels for Linux, "
        f"macOS and Windows), install llama.cpp (its release archives and package managers "
        f"ship {NAME}), or name the binary with --llama-server PATH"
    )


def find_sd_server(configured: str = "") -> ServerProgram:
    """The sd-server to run; a ``ValueError`` saying where to get one when there is none."""
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ValueError(f"--sd-server {configured}: no executable file there")
        return _binary(path)
    on_path = shutil.which(SD_NAME)
    if on_path:
        return _binary(Path(on_path))
    return _missing(
        f"no {SD_NAME} found: build stable-diffusion.cpp's server (its target {SD_NAME}), "
        f"or name the binary with --sd-server PATH"
    )


def _binary(path: Path, libraries: tuple = ()) -> ServerProgram:
    return ServerProgram((str(path),), libraries, str(path))


def _bundled(installed: Installed) -> Optional[ServerProgram]:
    found = installed.engine()
    if found is None:
        return None
    return ServerProgram(
        (sys.executable, "-m", engine.__name__),
        label=f"bundled llama.cpp (xllamacpp {found})",
        bundled=True,
    )


def _missing(message: str):
    raise ValueError(message)
