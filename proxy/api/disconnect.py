"""Tell whether the client of the current request has gone away, before any byte is sent.

A request waiting for a free slot must leave the line as soon as its client hangs up, or
the line fills with requests nobody will read. Each server says it its own way: waitress
offers a callable (with ``channel_request_lookahead`` on), gunicorn hands over the socket.
"""
from __future__ import annotations

import select
import socket
from typing import Callable


def client_gone_probe(environ: dict) -> Callable[[], bool]:
    """A cheap callable answering "has the client closed its connection?"."""
    waitress_probe = environ.get("waitress.client_disconnected")
    if callable(waitress_probe):
        return waitress_probe
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        return lambda: _closed(sock)
    return lambda: False


def _closed(sock: socket.socket) -> bool:
    """An orderly close reads as end of file; pending bytes or nothing yet mean it is there.

    Readiness is asked of the kernel first, without waiting: the socket itself may have a
    timeout, and a read on it would wait that long.
    """
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError, ValueError):
        return False  # nothing to read after all (ValueError: a TLS socket cannot peek)
    except OSError:
        return True
