"""Where the proxy's log lines go: standard error, one format, whichever way it is served.

A log line often holds client text (a request's path, a model's name): its control
characters are written as escapes, so that no client can end a line early and write one of
its own making after it, or hide what it wrote from a terminal.
"""

from __future__ import annotations

import logging
import os
import traceback

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Formatter(logging.Formatter):
    """``logging.Formatter`` whose messages are escaped (:func:`escaped`); a traceback after
    one keeps its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escaped(super().formatMessage(record))


def escaped(text: str) -> str:
    """``text`` with every character that is not printable (C0 and C1 controls, DEL, line
    and paragraph separators, format characters such as bidirectional overrides) written as
    a Python escape: one line, as it was written, whatever it held. Most text is printable,
    and is told so at C speed."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode() for char in text
    )


def raised_at(exc: BaseException) -> str:
    """Where ``exc`` began (``fairqueue.py:100 in _band``), through the exception it was
    raised from: a log line's pointer to the code, where a whole traceback could carry a
    request's values."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown place"
    last = frames[-1]
    return f"{os.path.basename(last.filename)}:{last.lineno} in {last.name}"


def log_to_stderr(level: str) -> None:
    """Send log lines at ``level`` and above to standard error, unless the host program
    (a test, an embedding application) has set logging up already."""
    handler = logging.StreamHandler()
    handler.setFormatter(Formatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
