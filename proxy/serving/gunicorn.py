"""gunicorn, as the proxy runs it: its settings, hooks and threaded worker.

Production defaults for gunicorn, shared by ``gunicorn.conf.py`` and ``oai-proxy --server
gunicorn``.

gunicorn's threaded worker, with a deadline on every wait for a client.

gthread hands a connection to a thread once its first bytes arrive, and the thread then blocks
until the whole request is in; it blocks the same way writing an answer the client does not
read. Clients that send half a request and stall would hold those threads for good. Here a
client socket gives up once it has waited ``--client-timeout`` seconds for the client to send
more, or to take more, and the connection is dropped as if the client had hung up (which
gunicorn does quietly). Waiting on the upstream is not waiting on the client: a stream whose
model thinks for minutes is not cut.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import struct
import sys
import tempfile
from typing import Optional

from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

from proxy.config.runtime import Runtime, share_metrics
from proxy.config.settings import Settings
from proxy.logs import Formatter
from proxy.servers.supervisor import SupervisorProcess, start_supervisor
from proxy.serving.reloading import refresh_supervisor, watch_files


class Master:
    """What gunicorn's master keeps for all its workers, made before it forks the first.

    The process that runs the model servers: workers come and go (a crash,
    ``--max-requests``), the servers must not go with them. And the folder where every worker
    writes its metrics, unless the operator named one (``PROMETHEUS_MULTIPROC_DIR``).
    Whatever was there already (``oai-proxy --server gunicorn`` makes both before gunicorn's
    hooks run) is left alone, and only what this made is removed.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.supervisor: Optional[SupervisorProcess] = None
        self.folder = ""
        self.owner = os.getpid()

    def start(self) -> "Master":
        """Raises ``ValueError`` when the models' servers cannot be run."""
        self.owner = os.getpid()
        runtime = Runtime.from_environment()
        if not runtime.metrics_folder:
            self.folder = tempfile.mkdtemp(prefix="oai-proxy-metrics-")
            share_metrics(self.folder)
        if not runtime.supervisor:
            self.supervisor = start_supervisor(self.settings)
        return self

    def stop(self) -> None:
        """Stop what this made, in the master only: a worker is a fork of the master, and its
        exit unwinds the same code."""
        if os.getpid() != self.owner:
            return
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


class MasterHooks:
    """gunicorn's hooks around :class:`Master`."""

    def __init__(self, settings: Settings) -> None:
        self.master = Master(settings)

    def on_starting(self, arbiter) -> None:
        try:
            self.master.start()
        except ValueError as exc:
            sys.exit(f"oai-proxy: {exc}")

    def when_ready(self, arbiter) -> None:
        """``--watch``: a changed keys or models file starts the workers afresh."""
        watch_files(self.master.settings)

    def on_reload(self, arbiter) -> None:
        """SIGHUP: the servers the proxy runs follow the models file as the workers start
        afresh."""
        refresh_supervisor()

    def child_exit(self, arbiter, worker) -> None:
        """A worker's live gauges (queue, slots busy) leave the sums with it."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, Runtime.from_environment().metrics_folder)

    def on_exit(self, arbiter) -> None:
        self.master.stop()


class EscapingLogger(Logger):
    """gunicorn's own log (its error log, and its access log when one is asked for), its
    lines escaped as the proxy's are (:class:`proxy.logs.Formatter`): they name paths and
    headers that clients wrote."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                shape = handler.formatter or Formatter()
                handler.setFormatter(Formatter(shape._fmt, shape.datefmt))


def gunicorn_options(settings: Settings) -> dict:
    """Threaded workers sized for long-lived streams: each open stream holds a thread.

    Threads also read requests, so clients that stall half-way are dropped after
    ``--client-timeout`` (see :mod:`proxy.serving.gunicorn`).
    """
    hooks = MasterHooks(settings)
    return {
        "bind": settings.serving.addresses(),
        "workers": settings.serving.workers,
        "worker_class": patient_worker(settings.serving.client_timeout),
        "threads": settings.serving.threads,
        # gunicorn's default (1000) caps the open connections per worker, so threads beyond
        # that never get a stream; keep its 1000 idle keep-alive slots on top of one per thread
        "worker_connections": settings.serving.threads + 1000,
        # a generation can stream for minutes; the upstream timeout bounds it instead
        "timeout": int(settings.upstream.upstream_timeout) + 30,
        # our own grace first (streams end with an error event), then gunicorn's kill
        "graceful_timeout": int(settings.serving.graceful_timeout) + 5,
        "keepalive": 5,
        "loglevel": settings.observing.log_level,
        "logger_class": EscapingLogger,
        "on_starting": hooks.on_starting,
        "when_ready": hooks.when_ready,
        "on_reload": hooks.on_reload,
        "child_exit": hooks.child_exit,
        "on_exit": hooks.on_exit,
        # newer gunicorn opens a control socket at one fixed path per user: every proxy on the
        # host would take it from the one before, and the proxy needs none
        **(
            {"control_socket_disable": True}
            if "control_socket_disable" in Config().settings
            else {}
        ),
    }


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
