"""An MCP server's messages bounded while they are read: every JSON text on a line (a stdio
message, an SSE event, a JSON body) keeps the first bytes of each string, and of its long
strings only as many bytes as the line's budget holds; the rest of each such string is
dropped as it arrives, so a tool that answers 100 MB costs a pass over those bytes, never
their memory. What is kept stays valid JSON: a string is cut between characters, never
inside an escape or a UTF-8 sequence. A line that keeps more than its most (a flood of
short strings or numbers) is refused: :class:`TooLong`. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import re
from typing import Iterator, Optional

SHORT = 1024  # bytes of every string kept whatever the budget: keys, names, types, ids
QUOTE, BACKSLASH = ord('"'), ord("\\")
IN_STRING = re.compile(rb'[\\"]')  # where a run of a string's plain bytes ends


class TooLong(ValueError):
    """A line kept more bytes than its bound: no cutting of strings can make it fit."""


class Cutter:
    """Cuts the long strings of the JSON texts it is fed, line by line: each line may keep
    ``budget`` bytes of strings beyond their first :data:`SHORT` bytes, and ``most`` bytes
    in all. Lines end at a raw newline, which no JSON string holds."""

    def __init__(self, budget: int, most: int) -> None:
        self.budget, self.most = budget, most
        self._in_string = False
        self._dropping = False  # the rest of the current string is dropped
        self._carried = b""  # an escape or UTF-8 sequence begun at the end of the last piece
        self._slashes = 0  # backslashes that ended the last piece, while dropping
        self._string = 0  # bytes of the current string kept
        self._spent = 0  # bytes of the line's budget spent
        self._line = 0  # bytes the line kept
        self._cut = False  # the line lost bytes

    def pieces(self, data: bytes) -> Iterator[tuple[bytes, Optional[bool]]]:
        """``data`` as it is kept: each piece, and after a piece that ends a line whether
        that line lost bytes (``None``: the line goes on). The newlines are not kept."""
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                if start < len(data):
                    yield self._feed(data[start:]), None
                return
            kept = self._feed(data[start:end])
            yield kept, self._end_line()
            start = end + 1

    def _end_line(self) -> bool:
        cut = self._cut
        self._in_string = self._dropping = self._cut = False
        self._carried, self._slashes = b"", 0
        self._string = self._spent = self._line = 0
        return cut

    def _feed(self, data: bytes) -> bytes:
        """One piece of a line (no newline in it), as kept."""
        if self._carried:
            data, self._carried = self._carried + data, b""
        kept = []
        at, size = 0, len(data)
        while at < size:
            if not self._in_string:
                quote = data.find(b'"', at)
                if quote < 0:
                    kept.append(data[at:])
                    break
                kept.append(data[at : quote + 1])
                at = quote + 1
                self._in_string, self._dropping, self._string = True, False, 0
            elif self._dropping:
                at = self._dropped(data, at)
                if not self._in_string:
                    kept.append(b'"')
            else:
                at = self._kept(data, at, kept)
        self._line += sum(map(len, kept))
        if self._line > self.most:
            raise TooLong(f"a message kept more than {self.most} bytes")
        return b"".join(kept)

    def _kept(self, data: bytes, at: int, kept: list) -> int:
        """Read a string's bytes from ``at`` while its allowance lasts; where it ends."""
        size = len(data)
        stop = IN_STRING.search(data, at)
        end = stop.start() if stop else _whole_characters(data, at, size)
        if end > at:
            kept.append(self._run(data, at, end))
            if self._dropping:
                return end
        if stop is None:  # the string goes on in the next piece: a split character waits
            self._carried = data[end:]
            return size
        if data[end] == QUOTE:
            kept.append(b'"')
            self._in_string = False
            return end + 1
        length = _escape_length(data, end)
        if length == 0:  # the escape goes on in the next piece
            self._carried = data[end:]
            return size
        if length <= self._allowance():
            self._spend(length)
            kept.append(data[end : end + length])
        else:
            self._dropping = self._cut = True
        return end + length

    def _run(self, data: bytes, start: int, end: int) -> bytes:
        """Plain bytes of a string, as many as its allowance keeps, cut between characters."""
        allowance = self._allowance()
        if end - start <= allowance:
            self._spend(end - start)
            return data[start:end]
        cut = start + allowance
        while cut > start and data[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            cut -= 1
        self._spend(cut - start)
        self._dropping = self._cut = True
        return data[start:cut]

    def _dropped(self, data: bytes, at: int) -> int:
        """Skip a dropped string's bytes up to its closing quote (past it: ``in_string`` is
        then false) or the piece's end; a quote after an odd run of backslashes is text."""
        size = len(data)
        while True:
            quote = data.find(b'"', at)
            if quote < 0:
                self._slashes = _trailing_slashes(data, at, size, self._slashes)
                return size
            if _trailing_slashes(data, at, quote, self._slashes) % 2 == 0:
                self._slashes = 0
                self._in_string = self._dropping = False
                return quote + 1
            self._slashes = 0
            at = quote + 1

    def _allowance(self) -> int:
        return max(0, SHORT - self._string) + self.budget - self._spent

    def _spend(self, length: int) -> None:
        free = min(length, max(0, SHORT - self._string))
        self._spent += length - free
        self._string += length


def _escape_length(data: bytes, at: int) -> int:
    """The length of the escape at ``at`` (a surrogate pair is one), or 0 when the piece
    ends before it does."""
    if at + 1 >= len(data):
        return 0
    if data[at + 1] != ord("u"):
        return 2
    if at + 6 > len(data):
        return 0
    if data[at + 2 : at + 4].upper() in (b"D8", b"D9", b"DA", b"DB"):  # a high surrogate
        if at + 8 > len(data):
            return 0
        if data[at + 6 : at + 8] == b"\\u":
            return 12 if at + 12 <= len(data) else 0
    return 6


def _whole_characters(data: bytes, start: int, end: int) -> int:
    """Where the last whole UTF-8 character before ``end`` ends (a character split by the
    piece's end is carried to the next)."""
    lead = end - 1
    while lead >= start and lead > end - 4 and data[lead] & 0xC0 == 0x80:
        lead -= 1
    if lead < start:
        return end
    first = data[lead]
    length = 1 if first < 0x80 else 2 if first < 0xE0 else 3 if first < 0xF0 else 4
    return end if lead + length <= end else lead


def _trailing_slashes(data: bytes, start: int, end: int, before: int) -> int:
    """Backslashes that end ``data[start:end]``, counting ``before`` ones that ended the
    last piece when the whole of it is backslashes."""
    at = end
    while at > start and data[at - 1] == BACKSLASH:
        at -= 1
    return end - at + (before if at == start else 0)
