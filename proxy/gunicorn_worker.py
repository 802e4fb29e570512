"""gunicorn's threaded worker, with a deadline on every wait for a client.

gthread hands a connection to a thread once its first bytes arrive, and the thread then
blocks until the whole request is in; it blocks the same way writing an answer the client
does not read. Clients that send half a request and stall would hold those threads for
good. Here a client socket gives up once it has waited ``--client-timeout`` seconds for the
client to send more, or to take more, and the connection is dropped as if the client had
hung up (which gunicorn does quietly). Waiting on the upstream is not waiting on the
client: a stream whose model thinks for minutes is not cut.
"""
from __future__ import annotations

import errno
import socket

from gunicorn.workers.gthread import ThreadWorker


class PatientSocket(socket.socket):
    """A client socket whose blocking reads and writes give up after ``patience`` seconds."""

    patience: float

    @classmethod
    def adopt(cls, sock: socket.socket, patience: float) -> "PatientSocket":
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.patience = patience
        return adopted

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.patience)
        else:
            super().setblocking(False)

    def recv(self, *args, **kwargs):
        with _dropped_when_too_slow():
            return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        with _dropped_when_too_slow():
            return super().recv_into(*args, **kwargs)

    def send(self, *args, **kwargs):
        with _dropped_when_too_slow():
            return super().send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        with _dropped_when_too_slow():
            return super().sendall(*args, **kwargs)


class _dropped_when_too_slow:
    """Turn a timed-out wait for the client into the reset gunicorn already expects."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, traceback) -> bool:
        if kind is not None and issubclass(kind, TimeoutError):
            raise ConnectionResetError(errno.ECONNRESET, "the client was too slow") from None
        return False


def patient_worker(patience: float) -> type:
    """The worker class for gunicorn's ``worker_class``, waiting ``patience`` seconds."""
    return type("PatientThreadWorker", (PatientThreadWorker,), {"patience": patience})


class PatientThreadWorker(ThreadWorker):
    """``gthread`` whose client sockets are :class:`PatientSocket`s, and which lets the app
    end its streams cleanly when told to stop (see :mod:`proxy.draining`)."""

    patience = 30.0

    def handle_exit(self, sig, frame) -> None:
        app = getattr(self, "wsgi", None)  # None: told to stop while still loading the app
        if app is not None:
            state = app.extensions["proxy"]
            state.drain.begin(state.settings.graceful_timeout)
        super().handle_exit(sig, frame)

    def enqueue_req(self, conn) -> None:
        if not isinstance(conn.sock, PatientSocket):
            conn.sock = PatientSocket.adopt(conn.sock, self.patience)
        super().enqueue_req(conn)
