"""Keys added to and taken from a keys file as text, so that everything else in it (comments,
order, layout) stays as the operator wrote it: what the admin API's key routes write. Pure:
the caller reads and writes the file.
"""

from __future__ import annotations

import re
import secrets
from itertools import pairwise

import tomli_w

from proxy.access.keyring import FIELDS
from proxy.config.files import tomllib

TABLE = re.compile(r"^[ \t]*\[\[[ \t]*keys[ \t]*\]\]", re.MULTILINE)
NEW_SECRET_BYTES = 24  # a new key's secret: 192 random bits, as URL-safe text


def new_secret() -> str:
    return "sk-" + secrets.token_urlsafe(NEW_SECRET_BYTES)


def with_key(text: str, entry: dict) -> str:
    """``text`` with a ``[[keys]]`` table for ``entry`` at its end."""
    unknown = set(entry) - FIELDS
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    table = "[[keys]]\n" + tomli_w.dumps(entry)
    return text.rstrip("\n") + ("\n\n" if text.strip() else "") + table


def without_key(text: str, name: str) -> str:
    """``text`` without the ``[[keys]]`` table named ``name``; a ``KeyError`` when it has
    none (a key given by ``--api-key`` is not in the file)."""
    starts = [_with_its_comments(text, match.start()) for match in TABLE.finditer(text)]
    for start, end in pairwise([*starts, len(text)]):
        if tomllib.loads(text[start:end])["keys"][0].get("name") == name:
            return (text[:start].rstrip("\n") + "\n\n" + text[end:]).strip("\n") + "\n"
    raise KeyError(name)


def _with_its_comments(text: str, start: int) -> int:
    """Where a table starting at ``start`` starts with the comment lines right above it."""
    while start > 0:
        above = text.rfind("\n", 0, start - 1) + 1
        if not text[above:start].lstrip().startswith("#"):
            break
        start = above
    return start
