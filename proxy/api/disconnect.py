"""Tell whether the client of the current request has gone away, before any byte is sent.

A request waiting for a free slot must leave the queue as soon as its client hangs up, or
the queue fills with requests nobody will read. Both servers let the socket be reached:
gunicorn hands it over, and waitress's own probe is a method of the connection that owns it.
The kernel is asked about the socket directly, because waitress notices a hang-up only while
it reads the connection, and reading ahead of a running request costs its event loop a spin
on every answer.
"""

from __future__ import annotations

import select
import socket
from typing import Callable, Optional


def client_gone_probe(environ: dict) -> Callable[[], bool]:
    """A cheap callable answering "has the client closed its connection?"."""
    sock = environ.get("gunicorn.socket") or _waitress_socket(environ)
    if isinstance(sock, socket.socket):
        return lambda: _closed(sock)
    return lambda: False


def _waitress_socket(environ: dict) -> Optional[socket.socket]:
    """The socket of waitress's connection: its probe is bound to the connection."""
    connection = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
    return getattr(connection, "socket", None)


def _closed(sock: socket.socket) -> bool:
    """An orderly close reads as end of file; pending bytes or nothing yet mean it is there.

    Readiness is asked of the kernel first, without waiting: the socket itself may have a
    timeout, and a read on it would wait that long.
    """
    try:
        if not _readable(sock):
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError, ValueError):
        return False  # nothing to read after all (ValueError: a TLS socket cannot peek)
    except OSError:
        return True


def _readable(sock: socket.socket) -> bool:
    """``poll`` where there is one: ``select`` fails on descriptors above 1023, which a
    proxy holding hundreds of streams reaches; Windows has only ``select``."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])
