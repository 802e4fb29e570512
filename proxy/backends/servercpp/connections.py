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
from dataclasses import dataclass
from typing import Iterator, Optional
from urllib.parse import urlsplit

from proxy.backends.servercpp.chunked import dechunked

LONGEST_LINE = 65536
MOST_HEADERS = 100
PIECE = 65536  # the most read from a body at once; a read returns what has arrived


class BrokenAnswer(ValueError):
    """What the server sent is not an HTTP/1.x answer, or it ended early."""


@dataclass(frozen=True)
class Head:
    """An answer's status and how its body is framed."""

    status: int
    reason: str
    length: Optional[int]  # None: chunked, or until the server closes
    chunked: bool
    keep_alive: bool


class Connection:
    """One socket to the server and the buffered reader its answers are read through."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def exchange(self, request: bytes) -> Head:
        """Send a whole request and read the head of its answer; ``ConnectionError`` when
        the server closed the connection instead of answering."""
        self.sock.sendall(request)
        while True:
            head = self._head()
            if not 100 <= head.status < 200:  # an interim answer: the real one follows
                return head

    def body(self, head: Head) -> bytes:
        """The whole body of the answer ``head`` began."""
        if head.chunked:
            return b"".join(self.pieces(head))
        if head.length is None:
            return self.reader.read()
        data = self.reader.read(head.length)
        if len(data) < head.length:
            raise BrokenAnswer("the answer ended before its Content-Length")
        return data

    def pieces(self, head: Head) -> Iterator[bytes]:
        """The body as it arrives, each piece all the socket had at the time."""
        raw = self._arrivals()
        if head.chunked:
            yield from dechunked(raw)
            return
        due = head.length
        if due == 0:
            return
        for piece in raw:
            if due is not None:
                piece = piece[:due]
                due -= len(piece)
            yield piece
            if due == 0:
                return
        if due:
            raise BrokenAnswer("the answer ended before its Content-Length")

    def _arrivals(self) -> Iterator[bytes]:
        """What the reader took in with the head, then each read of the socket itself.

        A stream's every read would otherwise pass two Python layers and, with a Python
        timeout on the socket, a ``poll`` first: here the socket blocks, and the kernel keeps
        the deadline. The connection is not reused after a stream.
        """
        first = self.reader.read1(PIECE)  # the reader's buffer is smaller: it is empty after
        if not first:
            return
        yield first
        deadline = self.sock.gettimeout()
        self.sock.settimeout(None)
        if deadline:
            seconds = int(deadline)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack(
                "ll", seconds, int((deadline - seconds) * 1_000_000)))
        recv = self.sock.recv
        while True:
            try:
                piece = recv(PIECE)
            except (BlockingIOError, ssl.SSLWantReadError):  # the kernel's deadline passed
                raise socket.timeout("the server sent nothing in time") from None
            if not piece:
                return
            yield piece

    def still_open(self) -> bool:
        """An idle connection with something to read was closed (or spoiled) by the server.

        ``poll``, not ``select``: a proxy holding a thousand streams has descriptors above
        1024.
        """
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def _head(self) -> Head:
        line = self.reader.readline(LONGEST_LINE)
        if not line:
            raise ConnectionResetError("the server closed the connection without answering")
        version, _, rest = line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise BrokenAnswer(f"{line[:40]!r} is not an HTTP status line")
        fields = self._fields()
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
        keep_alive = (b"close" not in connection if version == b"HTTP/1.1"
                      else b"keep-alive" in connection)
        return Head(status, reason.strip().decode("latin-1"), length, chunked,
                    keep_alive and (chunked or length is not None))

    def _fields(self) -> dict:
        """The header fields that frame the body, by lower-case name."""
        fields = {}
        for _ in range(MOST_HEADERS):
            line = self.reader.readline(LONGEST_LINE)
            if line in (b"\r\n", b"\n"):
                return fields
            if not line:
                raise BrokenAnswer("the answer ended inside its head")
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        raise BrokenAnswer(f"the answer has more than {MOST_HEADERS} header fields")


class ConnectionPool:
    """Idle connections to ``base_url``, newest first; at most ``size`` are kept."""

    def __init__(self, base_url: str, *, size: int, connect_timeout: float,
                 read_timeout: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")  # a server mounted under a path
        self.authority = parts.netloc.rpartition("@")[2]  # what the Host header says
        self.tls: Optional[ssl.SSLContext] = (ssl.create_default_context()
                                              if parts.scheme == "https" else None)
        self.size = size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list = []
        self._lock = threading.Lock()

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
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        return Connection(sock)

    def give_back(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
