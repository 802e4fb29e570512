"""Log lines stay one line each, whatever client text they hold."""

from __future__ import annotations

import logging
import re
import sys

import pytest

from proxy.logs import FORMAT, Formatter, escaped, raised_at


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("GET /v1/models 200", "GET /v1/models 200"),
        ("/v1/models\r\nFORGED line", "/v1/models\\r\\nFORGED line"),
        ("a\nb", "a\\nb"),
        ("tab\tstop", "tab\\tstop"),
        ("nul\x00 bell\x07 esc\x1b[31m", "nul\\x00 bell\\x07 esc\\x1b[31m"),
        ("del\x7f", "del\\x7f"),
        ("c1 nel\x85 csi\x9b", "c1 nel\\x85 csi\\x9b"),
        ("line\u2028paragraph\u2029", "line\\u2028paragraph\\u2029"),
        ("bidi \u202eevil\u202c", "bidi \\u202eevil\\u202c"),
        ("lone \ud800", "lone \\ud800"),
        ("model=qwen2.5 名前 é 😀", "model=qwen2.5 名前 é 😀"),
        ("back\\slash", "back\\slash"),
        ("", ""),
    ],
)
def test_escaped(text, logged):
    assert escaped(text) == logged


def record(message: str, *args) -> logging.LogRecord:
    return logging.LogRecord("proxy.access", logging.INFO, __file__, 1, message, args, None)


def test_the_formatter_escapes_the_message_with_its_arguments():
    line = Formatter(FORMAT).format(record("%s %s %d", "GET", "/x\r\nFORGED", 404))
    assert "\n" not in line and "\r" not in line
    assert line.endswith("INFO proxy.access: GET /x\\r\\nFORGED 404")


def test_a_traceback_keeps_its_lines():
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record("failed\non %s", "/x")
        entry.exc_info = sys.exc_info()
    lines = Formatter(FORMAT).format(entry).splitlines()
    assert lines[0].endswith("failed\\non /x")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"


def _band() -> int:
    return next(priority for priority in [] if priority)


def _turns():
    yield _band()


def test_a_failure_is_logged_where_it_began_without_its_values():
    with pytest.raises(RuntimeError) as caught:  # a StopIteration out of a generator
        next(_turns())
    assert re.fullmatch(r"test_logs\.py:\d+ in _band", raised_at(caught.value))
    assert raised_at(ValueError("never raised")) == "an unknown place"
