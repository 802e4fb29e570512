"""Keep-alive HTTP/1.1 connections to one server, reused by one request at a time.

A request goes out as one ``sendall`` of bytes mostly prepared in advance; of the answer's
head only the status and the three headers that frame the body are read. With a local
server, the layers ``requests``, ``urllib3`` and ``http.client`` (whose header parser is
the email package's) put around that exchange cost more than the exchange itself.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Protocol, Union
from urllib.parse import urlsplit

from proxy.backends.wire.chunked import Dechunker

LONGEST_HEAD = 65536
MOST_HEADERS = 100
PIECE = 65536  # the most read at once; a read returns what has arrived
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
WATCH_EVERY = 0.1  # seconds between two looks at the client while the server says nothing


class BrokenAnswer(ValueError):
    """What the server sent is not an HTTP/1.x answer, or it ended early."""


class Abandoned(Exception):
    """The client the answer was for went away while the server worked on it."""


class Waits(Protocol):
    """What counts the time a request waited on its server (:class:`proxy.ops.measure.Measure`)."""

    waited: float


@dataclass(frozen=True)
class Head:
    """An answer's status and how its body is framed."""

    status: int
    reason: str
    length: Optional[int]  # None: chunked, or until the server closes
    chunked: bool
    keep_alive: bool


class Connection:
    """One socket to the server, and what has been read from it but not yet used.

    The socket blocks and the kernel keeps its deadline (``SO_RCVTIMEO``, ``SO_SNDTIMEO``):
    a socket with a Python timeout asks ``poll`` before every read and write, and a file
    object over it adds two Python layers to each read.
    """

    def __init__(self, sock: socket.socket, deadline: Optional[float] = None) -> None:
        """``deadline``: seconds a read or write may wait (default: the socket's timeout)."""
        self.sock = sock
        self.buffer = b""
        # while a request's client is watched: whether it has gone (then the connection is
        # given up, which tells the server to stop working for it)
        self.client_gone: Optional[Callable[[], bool]] = None
        self.next_look = 0.0  # when the client is next looked at, while the server sends
        if deadline is None:
            deadline = sock.gettimeout()
        sock.settimeout(None)  # blocking, from here on: the kernel keeps the deadline
        self.set_deadline(deadline)

    def set_deadline(self, seconds: Optional[float]) -> None:
        """How long each read or write may wait from now on; ``None``: for ever.

        The kernel wakes a read every :data:`WATCH_EVERY` seconds at most, whatever the
        deadline (:meth:`_waited` keeps it): a watched request's client is looked at then,
        with no change to the socket for each request.
        """
        self.deadline = seconds or 0.0  # 0: no deadline, as the kernel reads it
        reads = min(self.deadline, WATCH_EVERY) if self.deadline else WATCH_EVERY
        for option, wait in ((socket.SO_RCVTIMEO, reads), (socket.SO_SNDTIMEO, self.deadline)):
            self.sock.setsockopt(
                socket.SOL_SOCKET,
                option,
                struct.pack("ll", int(wait), int((wait - int(wait)) * 1_000_000)),
            )

    def watch(self, client_gone: Optional[Callable[[], bool]]) -> None:
        """Look at the client of the request on this connection while reading its answer
        (``None``: no longer)."""
        self.client_gone = client_gone
        self.next_look = time.monotonic() + WATCH_EVERY

    def exchange(self, request: bytes) -> Head:
        """Send a whole request and read the head of its answer; ``ConnectionError`` when
        the server closed the connection instead of answering."""
        try:
            self.sock.sendall(request)
        except WOULD_BLOCK:
            raise socket.timeout("the server took nothing in time") from None
        while True:
            head = self._head()
            if not 100 <= head.status < 200:  # an interim answer: the real one follows
                return head

    def body(self, head: Head) -> bytes:
        """The whole body of the answer ``head`` began."""
        return b"".join(self.pieces(head))

    def pieces(self, head: Head) -> Iterator[bytes]:
        """The body as it arrives, each piece all the socket had at the time."""
        body = _framing(head)
        piece, self.buffer = self.buffer, b""
        while not body.ended:
            if not piece:
                piece = self._receive()
                if not piece:
                    body.closed()
                    return
            payload = body.feed(piece)
            piece = b""
            if payload:
                yield payload
        self.buffer = piece or body.rest  # what is not this body's: the next answer's

    def lines(
        self, head: Head, failed: Callable[[Exception], Exception], watch: Optional[Waits] = None
    ) -> Iterator[list]:
        """The body's lines as they arrive: for each read that ended any, the lines it ended
        (undecoded, without their ``\\n``); a last line never ended comes last.

        A streamed token's whole trip below the parser, in one pass: the socket read (its
        wait added to ``watch.waited``), the body's framing undone, the lines split. What
        breaks is raised as ``failed`` makes it.
        """
        body = _framing(head)
        piece, self.buffer = self.buffer, b""
        pending = b""
        try:
            while not body.ended:
                if not piece:
                    began = time.perf_counter()
                    piece = self._receive()
                    if watch is not None:
                        watch.waited += time.perf_counter() - began
                    if not piece:
                        body.closed()
                        break
                data = body.feed(piece)
                piece = b""
                if b"\n" in data:
                    *ended, pending = (pending + data).split(b"\n")
                    yield ended
                elif data:
                    pending += data
        except Exception as exc:
            raise failed(exc) from exc
        if pending:
            yield [pending]

    def await_body(self) -> None:
        """Wait for the body's first bytes, within the deadline set now (``socket.timeout``
        once it passes), and keep them for the reading that follows."""
        if not self.buffer:
            self.buffer = self._receive()

    def still_open(self) -> bool:
        """An idle connection with something to read was closed (or spoiled) by the server.

        ``poll``, not ``select``: a proxy holding a thousand streams has descriptors above
        1024.
        """
        if self.buffer:
            return False
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        self.sock.close()

    def _receive(self) -> bytes:
        """One read of the socket: what has arrived, up to :data:`PIECE`; ``b""`` once closed.

        While the client is watched, it is looked at every :data:`WATCH_EVERY` seconds,
        whether the server sends or says nothing, and the answer is given up once it has gone.
        """
        try:
            piece = self.sock.recv(PIECE)
        except WOULD_BLOCK:  # the kernel's deadline passed
            piece = self._waited()
        if self.client_gone is not None and time.monotonic() >= self.next_look:
            self._look_at_client()
        return piece

    def _waited(self) -> bytes:
        """Read on after the kernel woke a read that found nothing: the client looked at,
        when it is watched, and again, until the read's own deadline has passed."""
        waited = WATCH_EVERY
        while not (self.deadline and waited >= self.deadline):
            if self.client_gone is not None:
                self._look_at_client()
            try:
                return self.sock.recv(PIECE)
            except WOULD_BLOCK:
                waited += WATCH_EVERY
        raise socket.timeout("the server sent nothing in time")

    def _look_at_client(self) -> None:
        self.next_look = time.monotonic() + WATCH_EVERY
        if self.client_gone():
            raise Abandoned("the client went away")

    def _head(self) -> Head:
        head = self._read_head()
        status_line, *lines = head.split(b"\n")
        version, _, rest = status_line.rstrip(b"\r").partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise BrokenAnswer(f"{status_line[:40]!r} is not an HTTP status line")
        if len(lines) > MOST_HEADERS:
            raise BrokenAnswer(f"the answer has more than {MOST_HEADERS} header fields")
        fields = {}  # only the ones that frame the body matter
        for line in lines:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        status = int(code)
        chunked = b"chunked" in fields.get(b"transfer-encoding", b"").lower()
        length = None
        if status in (204, 304):
            length = 0
        elif not chunked and b"content-length" in fields:
            try:
                length = int(fields[b"content-length"])
            except ValueError:
                raise BrokenAnswer("the answer's Content-Length is not a number") from None
        connection = fields.get(b"connection", b"").lower()
        keep_alive = (
            b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
        )
        return Head(
            status,
            reason.strip().decode("latin-1"),
            length,
            chunked,
            keep_alive and (chunked or length is not None),
        )

    def _read_head(self) -> bytes:
        """The head's lines, up to the blank line that ends it (which is consumed)."""
        buffer, searched = self.buffer, 0
        while True:
            end = _end_of_head(buffer, searched)
            if end is not None:
                head_end, body_start = end
                self.buffer = buffer[body_start:]
                return buffer[:head_end]
            if len(buffer) > LONGEST_HEAD:
                raise BrokenAnswer(f"the answer's head is longer than {LONGEST_HEAD} bytes")
            piece = self._receive()
            if not piece:
                if not buffer:
                    raise ConnectionResetError("the server closed the connection without answering")
                raise BrokenAnswer("the answer ended inside its head")
            searched = max(len(buffer) - 3, 0)
            buffer += piece


def _end_of_head(buffer: bytes, start: int) -> Optional[tuple]:
    """``(end of the head's last line, start of the body)`` once the blank line that ends a
    head is in ``buffer`` (lines may end in CRLF or a bare LF)."""
    crlf = buffer.find(b"\r\n\r\n", start)
    lf = buffer.find(b"\n\n", start)
    if crlf < 0 and lf < 0:
        return None
    if lf < 0 or 0 <= crlf < lf:
        return crlf, crlf + 4
    return lf, lf + 2


class ConnectionPool:
    """Idle connections to ``base_url``, newest first; at most ``size`` are kept."""

    def __init__(
        self, base_url: str, *, size: int, connect_timeout: float, read_timeout: float
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")  # a server mounted under a path
        self.authority = parts.netloc.rpartition("@")[2]  # what the Host header says
        self.tls: Optional[ssl.SSLContext] = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        self.size = size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list = []
        self._lock = threading.Lock()
        self._closed = False  # a connection given back after close is closed, not kept

    def take(self) -> tuple:
        """A connection and whether it was used before (a used one may have been closed by
        the server in the meantime: a failure to send on it is worth one retry)."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self.connect(), False
            if connection.still_open():
                return connection, True
            connection.close()

    def connect(self) -> Connection:
        """A new connection: ``OSError`` (``socket.timeout`` among them) when none can be made."""
        sock = socket.create_connection((self.host, self.port), self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            return Connection(sock, self.read_timeout)
        except BaseException:
            sock.close()
            raise

    def give_back(self, connection: Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.size:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for connection in idle:
            connection.close()


class Delimited:
    """A body of ``length`` bytes, or (``None``) of all the server sends until it closes."""

    __slots__ = ("due", "ended", "rest")

    def __init__(self, length: Optional[int]) -> None:
        self.due = length
        self.ended = length == 0
        self.rest = b""  # what came after the body: the start of the next answer

    def feed(self, piece: bytes) -> bytes:
        """The part of ``piece`` that is the body's."""
        if self.due is None:
            return piece
        if len(piece) > self.due:  # the server sent more than it said: left unread
            self.rest = piece[self.due :]
            piece = piece[: self.due]
        self.due -= len(piece)
        self.ended = not self.due
        return piece

    def closed(self) -> None:
        """The server closed the connection: the body is broken if it said it was longer."""
        if self.due:
            raise BrokenAnswer("the answer ended before its Content-Length")


def _framing(head: Head) -> Union[Dechunker, Delimited]:
    """How the body ``head`` begins is framed, undone as it arrives."""
    return Dechunker() if head.chunked else Delimited(head.length)
