"""Reaching a host a client or a model names (an image's URL, a page a web tool reads): its
name resolved once, the connection made to the very address checked (the name still in the
Host header and TLS's server name, so a name that resolves otherwise a moment later changes
nothing), and every connection of one call tracked, so one deadline ends them all at once,
however a server drips its bytes. Which addresses are public is
:mod:`proxy.core.addresses`' rule."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Callable, Optional
from urllib.parse import SplitResult, quote

from proxy.core.addresses import public

Resolve = Callable[[str], list]  # a host's every address; OSError when it has none
SAFE = "/%:@!$&'()*+,;=-._~?"  # what a path or a query keeps as it is; the rest is quoted


def resolve(host: str) -> list:
    """Every address ``host`` resolves to (an IP literal, itself)."""
    return [info[4][0].split("%")[0] for info in socket.getaddrinfo(host, None)]


def public_address(host: str, resolve: Resolve = resolve) -> Optional[str]:
    """An address of ``host`` to connect to, if it has one and every one of them is
    public; else None."""
    try:
        addresses = resolve(host)
    except (OSError, UnicodeError):
        return None
    return addresses[0] if public(addresses) else None


class CallSockets:
    """The sockets of one call, under one deadline: a handle on each, to shut it from
    here and end a read waiting on it at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.ended = False
        self._handles: list = []
        self._lock = threading.Lock()

    def left(self) -> float:
        """Seconds to the deadline (a moment at least: a socket's 0 would not wait at all)."""
        return max(self.at - time.monotonic(), 0.001)

    def opened(self, connection: socket.socket) -> socket.socket:
        """``connection``, kept track of (TLS takes it over: a duplicate shuts them both);
        once the call has ended, closed and a ``TimeoutError``."""
        with self._lock:
            if not self.ended:
                self._handles.append(connection.dup())
                return connection
        connection.close()
        raise TimeoutError("the call has ended")

    def end(self) -> None:
        """Shut every connection: a read still waiting ends at once, and none opens again."""
        with self._lock:
            self.ended = True
            handles, self._handles = self._handles, []
        for handle in handles:
            try:
                handle.shutdown(socket.SHUT_RDWR)
            except OSError:  # not connected any more
                pass
            handle.close()


def connect(
    url: SplitResult, address: Optional[str], sockets: CallSockets
) -> http.client.HTTPConnection:
    """An HTTP(S) connection to ``url``'s host, made at ``address`` when given (else at the
    host by its name) and kept track of by ``sockets``."""
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = kind(url.hostname, url.port, timeout=sockets.left())
    # http.client's own hook for opening the socket: the host's name stays for the rest
    connection._create_connection = lambda where, *args: sockets.opened(
        socket.create_connection((address or where[0], where[1]), *args)
    )
    return connection


def target(url: SplitResult) -> str:
    """A request's target: ``url``'s path and query, what may not be sent as it is
    quoted."""
    path = quote(url.path or "/", safe=SAFE)
    return f"{path}?{quote(url.query, safe=SAFE)}" if url.query else path
