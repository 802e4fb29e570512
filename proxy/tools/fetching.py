"""One HTTP GET for a web tool: connected to the address checked before (the host's name
still in the Host header and TLS's server name), no redirect followed (the caller checks
where it leads first), at most a bound of bytes read, and one deadline for the whole call,
from its first connect to its last byte: at the deadline every connection the call opened
is shut, which ends a read waiting on it, however a server drips its bytes.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass
from typing import Optional
from urllib.parse import SplitResult, quote

READ_SIZE = 64 * 1024
SAFE = "/%:@!$&'()*+,;=-._~?"  # what a path or a query keeps as it is; the rest is quoted


class Deadline:
    """A call's deadline: the connections it opens are shut when it passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False
        self._handles: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._end)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> "Deadline":
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()

    def left(self) -> float:
        """Seconds to the deadline (a moment at least: a socket's 0 would not wait at all)."""
        return max(self.at - time.monotonic(), 0.001)

    def opened(self, connection: socket.socket) -> socket.socket:
        """``connection``, kept track of (TLS takes it over: a duplicate shuts them both)."""
        with self._lock:
            if not self.passed:
                self._handles.append(connection.dup())
                return connection
        connection.close()
        raise TimeoutError("the call's deadline has passed")

    def _end(self) -> None:
        with self._lock:
            self.passed = True
            handles = list(self._handles)
        for handle in handles:
            try:
                handle.shutdown(socket.SHUT_RDWR)
            except OSError:  # not connected any more
                pass


@dataclass(frozen=True)
class Got:
    """What a GET got: the status, the content type and the redirect's target as the
    server wrote them, and the body of a 200 (``cut``: it went on past the bound)."""

    status: int
    content_type: str = ""
    location: str = ""
    body: bytes = b""
    cut: bool = False


def get(
    url: SplitResult, address: Optional[str], deadline: Deadline, most: int, headers: dict
) -> Got:
    """A GET of ``url``, connecting to ``address`` when given (else to the host by its
    name), reading at most ``most`` bytes of the body of a 200. A passed deadline is a
    ``TimeoutError``; a server that cannot be reached or breaks off, an ``OSError``, an
    ``http.client.HTTPException`` or a ``ValueError`` (a name that cannot be encoded)."""
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = kind(url.hostname, url.port, timeout=deadline.left())
    # http.client's own hook for opening the socket: the host's name stays for the rest
    connection._create_connection = lambda where, *args: deadline.opened(
        socket.create_connection((address or where[0], where[1]), *args)
    )
    try:
        connection.request("GET", _target(url), headers=headers)
        with connection.getresponse() as response:  # closed first: it holds the socket
            body, cut = bytearray(), False
            while response.status == 200 and not cut:
                piece = response.read1(min(READ_SIZE, most + 1 - len(body)))
                if not piece:
                    break
                body += piece
                cut = len(body) > most
            got = Got(
                response.status,
                response.getheader("Content-Type", ""),
                response.getheader("Location", ""),
                bytes(body[:most]),
                cut,
            )
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.passed or isinstance(exc, TimeoutError):
            raise TimeoutError("the call's deadline has passed") from None
        raise
    finally:
        connection.close()
    if deadline.passed:  # a connection shut at the deadline reads as its end
        raise TimeoutError("the call's deadline has passed")
    return got


def _target(url: SplitResult) -> str:
    """The request's target: ``url``'s path and query, what may not be sent as it is
    quoted."""
    path = quote(url.path or "/", safe=SAFE)
    return f"{path}?{quote(url.query, safe=SAFE)}" if url.query else path
