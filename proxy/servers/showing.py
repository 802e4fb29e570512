"""What may be shown of a server the proxy runs: its command line, and why it stopped while it
started. Pure: text in, text out.

A command line is shown (the proxy's log, the server's log, a failed start's error, the
admin API) with the values of the flags that carry secrets blanked: a flag carries one when
its name says so (``--api-key``, ``--api-key-file``, ``--hf-token``, any name with key,
token, secret, password or credential in it), in either form, ``--flag value`` or
``--flag=value``; an argument with spaces in it (a shell's ``-c`` script) is read as a
command line of its own. Blanking a value that was no secret (``--max-tokens 64``) costs only
its display.

Why a server stopped is told in a line a client may read. A server's output says why
(``failed to open GGUF file '/srv/models/x.gguf' (No such file or directory)``), among
lines that are not errors, in the words of its kind: current llama.cpp marks each line with
its level (``0.00.005.016 E gguf_init_from_file: …``), older servers write plain lines and
JSON. The first error is the cause (what follows is its consequences), said without the
function that logged it, and with every path on this machine cut to its file's name and
every address blanked: the reason goes to clients, the whole output stays the operator's (the
log, the admin API).
"""

from __future__ import annotations

import json
import re
from typing import Sequence

SECRET_WORDS = ("key", "token", "secret", "passw", "credential")
BLANK = "***"
SHORTEST_SCRUBBED = 8  # characters: a shorter value is blanked in commands, not in free text


def redacted(command: Sequence[str]) -> tuple:
    """``command`` with the value of every secret-bearing flag blanked."""
    return _read(command)[0]


def secrets(command: Sequence[str]) -> tuple:
    """The values :func:`redacted` blanks that are long enough to blank in free text too
    (a server's output, an error quoting it), longest first."""
    return tuple(
        sorted(
            {value for value in _read(command)[1] if len(value) >= SHORTEST_SCRUBBED},
            key=len,
            reverse=True,
        )
    )


def scrubbed(text: str, hidden: Sequence[str]) -> str:
    """``text`` with every value of ``hidden`` (:func:`secrets`) blanked."""
    for value in hidden:
        text = text.replace(value, BLANK)
    return text


def shown(command: Sequence[str]) -> str:
    """The command as one line for a log."""
    return " ".join(redacted(command))


def _read(command: Sequence[str]) -> tuple:
    """``(each argument as shown, the values blanked)``."""
    shown_parts, hidden = [], []
    hiding = False
    for part in command:
        if hiding:
            shown_parts.append(BLANK)
            hidden.append(part)
            hiding = False
        elif " " in part.strip():
            inner, found = _read(part.split())
            shown_parts.append(" ".join(inner))
            hidden += found
        elif _carries_secret(part):
            flag, equals, value = part.partition("=")
            shown_parts.append(f"{flag}={BLANK}" if equals else part)
            hidden += [value] if equals else []
            hiding = not equals
        else:
            shown_parts.append(part)
    return tuple(shown_parts), tuple(hidden)


def _carries_secret(part: str) -> bool:
    if not part.startswith("-"):
        return False
    name = part.lstrip("-").partition("=")[0].lower()
    return any(word in name for word in SECRET_WORDS)


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
