"""Why a server the proxy runs stopped while it started, in a line a client may read.

A server's output says why (``failed to open GGUF file '/srv/models/x.gguf' (No such file or
directory)``), among lines that are not errors, in the words of its kind: current
llama.cpp marks each line with its level (``0.00.005.016 E gguf_init_from_file: …``), older
servers write plain lines and JSON. The first error is the cause (what follows is its
consequences), said without the function that logged it, and with every path on this
machine cut to its file's name and every address blanked: the reason goes to clients, the
whole output stays the operator's (the log, the admin API). Pure: text in, a line out.
"""

from __future__ import annotations

import json
import re

LONGEST = 240  # characters of a reason
# current llama.cpp: time, level letter, an optional three-letter part, the text
_LEVELLED = re.compile(r"^\d+\.\d+\.\d+\.\d+ ([A-Z]) (?:[a-z]{3} +)?(.*)$")
_ERROR_WORDS = re.compile(
    r"\b(error|failed|unable|invalid|unknown|cannot|can't|not found|required|no such)\b",
    re.IGNORECASE,
)
_FUNCTION = re.compile(r"^[A-Za-z_][\w:]*(?:\(\))?: +")  # "gguf_init_from_file: "
# a path begins a word (after a space, a quote, a bracket or "="), so "-m/--model" is none
_PATH = re.compile(r"(?<![^\s'\"`(\[=])(?:/[^\s'\"`,:;()\[\]{}]+)+")
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\[[0-9a-fA-F:]+\](?::\d+)?")


def why_it_failed(output: str) -> str:
    """The cause ``output`` gives of a failed start; empty when it names none."""
    for line in output.splitlines():
        found = _error_of(line.strip())
        if found:
            return _public(found)
    return ""


def _error_of(line: str) -> str:
    """The error ``line`` states, or empty."""
    levelled = _LEVELLED.match(line)
    if levelled:
        return levelled.group(2) if levelled.group(1) == "E" else ""
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return ""
        if isinstance(entry, dict) and entry.get("level") == "ERROR":
            return str(entry.get("message", ""))
        return ""
    return line if _ERROR_WORDS.search(line) else ""


def _public(error: str) -> str:
    """``error`` without the function that logged it, paths cut to file names, no
    addresses, on one line of at most :data:`LONGEST` characters."""
    while _FUNCTION.match(error):
        error = _FUNCTION.sub("", error, count=1)
    error = _PATH.sub(lambda found: found.group().rstrip("/").rpartition("/")[2], error)
    error = _ADDRESS.sub("an address", error)
    error = " ".join(error.split())
    return error if len(error) <= LONGEST else error[: LONGEST - 1] + "…"
