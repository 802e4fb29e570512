"""Client text written into response headers: what the proxy names back to a client (options
it ignored, tools it left out) goes out as visible ASCII, whatever the client wrote.

A header line ends at CR or LF, and HTTP servers write headers as Latin-1: a name the client
chose, put in a header as it came, would end the line early (a header of the client's own
making, or a 500 where the server refuses it) or fail to encode at all.
"""

from __future__ import annotations

from typing import Iterable
from urllib.parse import quote

# visible ASCII but the list's separator and the escape itself: all else is percent-encoded
KEPT = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in ",%")
MOST = 2048  # characters of one header value; clients refuse header lines of a few KiB


def named(items: Iterable[str]) -> str:
    """``items`` as a comma-separated header value, each percent-encoded (UTF-8) to visible
    ASCII, as URLs are; past :data:`MOST` characters, the rest are counted rather than
    named."""
    encoded = [quote(item, safe=KEPT, errors="surrogatepass") for item in items]
    value = ", ".join(encoded)
    if len(value) <= MOST:
        return value
    shown, length = 0, 0
    while length + len(encoded[shown]) + 2 <= MOST:
        length += len(encoded[shown]) + 2
        shown += 1
    return ", ".join([*encoded[:shown], f"({len(encoded) - shown} more)"])
