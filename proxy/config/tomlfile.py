"""Reading the TOML files operators write (models, keys), with mistakes told in one line."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    import tomli as tomllib


def read_toml(path: str, what: str, error: type = ValueError) -> dict:
    """The document at ``path``, or ``error`` saying why not (``what``: "models file"…)."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
