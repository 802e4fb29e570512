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
import struct

from gunicorn.workers.gthread import ThreadWorker


class PatientSocket(socket.socket):
    """A client socket whose blocking reads and writes give up after ``patience`` seconds.

    The kernel keeps the deadline (``SO_RCVTIMEO``, ``SO_SNDTIMEO``): a socket with a Python
    timeout would ask ``poll`` before every read and write, a system call per call.
    """

    @classmethod
    def adopt(cls, sock: socket.socket, patience: float) -> "PatientSocket":
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        seconds = int(patience)
        deadline = struct.pack("ll", seconds, int((patience - seconds) * 1_000_000))
        adopted.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, deadline)
        adopted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, deadline)
        return adopted

    def recv(self, *args, **kwargs):
        try:
            return super().recv(*args, **kwargs)
        except BlockingIOError as exc:
            raise self._judged(exc) from None

    def recv_into(self, *args, **kwargs):
        try:
            return super().recv_into(*args, **kwargs)
        except BlockingIOError as exc:
            raise self._judged(exc) from None

    def send(self, *args, **kwargs):
        try:
            return super().send(*args, **kwargs)
        except BlockingIOError as exc:
            raise self._judged(exc) from None

    def sendall(self, *args, **kwargs):
        try:
            return super().sendall(*args, **kwargs)
        except BlockingIOError as exc:
            raise self._judged(exc) from None

    def _judged(self, exc: BlockingIOError) -> OSError:
        """In blocking mode, "would block" means the kernel's deadline passed: the client
        was too slow, and gets the reset gunicorn already expects. In non-blocking mode it
        means what it says."""
        if not self.getblocking():
            return exc
        return ConnectionResetError(errno.ECONNRESET, "the client was too slow")


def patient_worker(patience: float) -> type:
    """The worker class for gunicorn's ``worker_class``, waiting ``patience`` seconds."""
    return type("PatientThreadWorker", (PatientThreadWorker,), {"patience": patience})


class PatientThreadWorker(ThreadWorker):
    """``gthread`` whose client sockets are :class:`PatientSocket`s, and which lets the app
    end its streams cleanly when told to stop (see :mod:`proxy.core.draining`)."""

    patience = 30.0

    def handle_exit(self, sig, frame) -> None:
        app = getattr(self, "wsgi", None)  # None: told to stop while still loading the app
        if app is not None:
            state = app.extensions["proxy"]
            state.drain.begin(state.settings.serving.graceful_timeout)
        super().handle_exit(sig, frame)

    def enqueue_req(self, conn) -> None:
        if not isinstance(conn.sock, PatientSocket):
            conn.sock = PatientSocket.adopt(conn.sock, self.patience)
        super().enqueue_req(conn)
