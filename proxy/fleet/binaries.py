"""Where llama-server is: the operator's choice, then ``PATH``, then llama-cpp-python's own.

A llama-cpp-python wheel built with its server installs ``llama-server`` beside its shared
libraries without a run path: it starts only with their folders on the loader's path.
"""
from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path
from typing import Optional

NAME = "llama-server"


def find_llama_server(configured: str = "") -> tuple:
    """``(binary, library folders)``; a ``ValueError`` saying what to install when none."""
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ValueError(f"--llama-server {configured}: no executable file there")
        wheel = from_llama_cpp_python()  # named by its path, it still needs its libraries
        if wheel and wheel[0].resolve() == path.resolve():
            return wheel
        return path, ()
    on_path = shutil.which(NAME)
    if on_path:
        return Path(on_path), ()
    found = from_llama_cpp_python()
    if found:
        return found
    raise ValueError(f"no {NAME} found: install llama.cpp (its release archives and package "
                     f"managers ship {NAME}), or pip install llama-cpp-python built with "
                     f"its server, or name the binary with --llama-server PATH")


def from_llama_cpp_python() -> Optional[tuple]:
    """``(binary, library folders)`` of an installed llama-cpp-python built with its server."""
    try:
        files = importlib.metadata.distribution("llama-cpp-python").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    located = [Path(f.locate()) for f in files]
    for path in located:
        if path.name == NAME and path.is_file() and os.access(path, os.X_OK):
            libraries = sorted({f.parent for f in located
                                if f.name.startswith("lib") and ".so" in f.name})
            return path, tuple(libraries)
    return None
