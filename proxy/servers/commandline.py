"""A server's command line as it may be shown: the values of the flags that carry secrets
blanked, wherever the command is shown or written (the proxy's log, the server's log, a
failed start's error, the admin API).

A flag carries a secret when its name says so (``--api-key``, ``--api-key-file``,
``--hf-token``, any name with key, token, secret, password or credential in it), in either
form, ``--flag value`` or ``--flag=value``; an argument with spaces in it (a shell's ``-c``
script) is read as a command line of its own. Blanking a value that was no secret
(``--max-tokens 64``) costs only its display.
"""

from __future__ import annotations

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
