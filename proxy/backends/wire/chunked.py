"""HTTP/1.1 chunked transfer coding, decoded from whatever the socket delivered.

``http.client`` returns one chunk per read, several calls deep; a server streaming tokens
flat out delivers many chunks per read, and taking them all at once is what lets the
proxy keep up with it.
"""

from __future__ import annotations

LONGEST_SIZE_LINE = 1024  # a chunk-size line with extensions; longer is not HTTP


class BrokenChunks(ValueError):
    """The body is not chunked transfer coding, or it ended before its last chunk."""


class Dechunker:
    """The payload of a chunked body, undone from whatever the socket delivered, read by read.

    Ends at the last (zero-size) chunk; trailers after it are not read. Each read is walked by
    position: one holding a hundred chunks is not copied a hundred times over.
    """

    __slots__ = ("buffer", "due", "crlf_due", "ended")
    rest = b""  # what came after the body: trailers, never read

    def __init__(self) -> None:
        self.buffer = b""
        self.due = 0  # payload bytes still to come in the current chunk
        self.crlf_due = False  # the CRLF that closes a chunk's payload
        self.ended = False

    def feed(self, piece: bytes) -> bytes:
        """The payload ``piece`` brings (``b""``: none yet)."""
        if not (self.buffer or self.due or self.crlf_due):  # most reads: one whole chunk
            end = piece.find(b"\r\n", 0, LONGEST_SIZE_LINE)
            if end > 0:
                try:
                    size = int(piece[:end], 16)
                except ValueError:
                    size = 0  # a size with extensions, or none: the long way tells
                start = end + 2
                stop = start + size
                if size > 0 and len(piece) == stop + 2 and piece.endswith(b"\r\n"):
                    return piece[start:stop]
        buffer = self.buffer + piece if self.buffer else piece
        at, end_of_buffer = 0, len(buffer)
        due, crlf_due = self.due, self.crlf_due
        payload = []
        while True:
            if due:
                taken = min(due, end_of_buffer - at)
                payload.append(buffer[at : at + taken])
                due -= taken
                at += taken
                if due:
                    break
                crlf_due = True
            if crlf_due:
                if end_of_buffer - at < 2:
                    break
                if buffer[at : at + 2] != b"\r\n":
                    raise BrokenChunks("a chunk's payload is longer than its size")
                at += 2
                crlf_due = False
            end = buffer.find(b"\r\n", at)
            if end < 0:
                if end_of_buffer - at > LONGEST_SIZE_LINE:
                    raise BrokenChunks("no chunk size where one was due")
                break
            due = _size(buffer[at:end])
            at = end + 2
            if not due:
                self.ended = True
                break
        self.buffer, self.due, self.crlf_due = buffer[at:], due, crlf_due
        return b"".join(payload)

    def closed(self) -> None:
        """The server closed the connection: the body is broken unless it had ended."""
        if not self.ended:
            raise BrokenChunks("the body ended before its last chunk")


def _size(line: bytes) -> int:
    try:
        size = int(line.partition(b";")[0], 16)
    except ValueError:
        raise BrokenChunks(f"{line[:40]!r} is not a chunk size") from None
    if size < 0:
        raise BrokenChunks(f"{line[:40]!r} is not a chunk size")
    return size
