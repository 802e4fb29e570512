"""The proxy under granian: HTTP in Rust, the app's WSGI calls on threads of its workers.

granian parses requests, writes answers (chunked, the connection kept) and notices a client
that leaves mid-stream (it closes the answer's iterator) in Rust, where waitress and gunicorn
do it in Python. What the other servers give the proxy it gets here too:

- a thread per open stream or waiting request (``--threads``, granian's blocking threads,
  made as they are needed);
- the servers the proxy runs, in one supervisor for every worker, and metrics summed over
  the workers (:class:`~proxy.serving.gunicorn.Master`);
- a graceful stop. Told to stop, granian stops delivering the streams in flight at once, so
  the proxy stops first: each worker drains (told by a byte on a pipe, not a signal, which
  may land on one of granian's own threads and leave the worker's Python waiting: its
  streams get ``--graceful-timeout`` to finish, then end with an error event; a new request
  is answered 503, "send the request again") and says when it is done, and only then is
  granian told to stop. Its listening sockets stay open meanwhile: granian's accept loop
  spins on one that is shut;
- SIGHUP starts the workers afresh (a model pulled under several workers, a keys or models
  file changed), the supervisor serving the models file first.

What it cannot give: its WSGI environment carries no socket, so a request still waiting for
a slot or its first byte does not learn that its client has left until its first write.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import threading
import time
from typing import Callable

from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.serving.reloading import refresh_supervisor, watch_files

LAST_WORDS = 0.5  # seconds for the last bytes of ended streams to leave
MARGIN = 5.0  # seconds beyond the grace before granian is told to stop anyway


def serve_granian(settings: Settings, master) -> None:
    """Serve until told to stop (SIGTERM or SIGINT); ``master`` runs the model servers."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    serving = settings.serving
    server = Server(
        "proxy.wsgi:app",  # its name in process titles: the workers get their app from `made`
        address=serving.host,
        port=serving.port,
        interface=Interfaces.WSGI,
        workers=serving.workers,
        blocking_threads=serving.threads,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(
            keep_alive=True, header_read_timeout=int(serving.client_timeout * 1000)
        ),
        log_level=settings.observing.log_level,
        log_access=False,  # the app logs every request itself
        respawn_failed_workers=True,
        workers_kill_timeout=int(serving.graceful_timeout + MARGIN),
    )
    stopping = Stopping(server, serving.graceful_timeout)
    server.on_startup(stopping.install)
    server.on_startup(lambda: watch_files(settings))
    server.on_reload(refresh_supervisor)  # SIGHUP: the models file's servers, then workers
    server.on_shutdown(master.stop)
    server.serve(
        target_loader=functools.partial(made, settings, stopping.told, stopping.drained),
        wrap_loader=False,
    )


def made(settings: Settings, told: int, drained: int) -> Callable:
    """The app of one worker, which drains once it reads a byte from the file descriptor
    ``told`` and then writes one to ``drained``."""
    from proxy.app import create_app

    app = create_app(settings, Runtime.from_environment())
    drain = app.extensions["proxy"].drain
    grace = settings.serving.graceful_timeout

    def drain_when_told() -> None:
        if not os.read(told, 1):  # one byte for each worker: this one's
            return
        drain.begin(grace, refusing=True)
        drain.wait_closed(grace + LAST_WORDS)
        time.sleep(LAST_WORDS)  # the ended streams' last bytes leave
        os.write(drained, b".")

    threading.Thread(target=drain_when_told, name="drain-told", daemon=True).start()
    return app


class Stopping:
    """The proxy's way to stop, before granian's own."""

    def __init__(self, server, grace: float) -> None:
        self.server = server
        self.grace = grace
        self.told, self.tell = os.pipe()  # a byte for each worker to drain
        self.said, self.drained = os.pipe()  # the workers write a byte each once drained
        self._begun = False
        self._granians = signal.getsignal(signal.SIGTERM)  # granian's own, once installed

    def install(self) -> None:
        """Take SIGTERM and SIGINT (in the main process, once granian has set its own
        handlers, which :meth:`_finish` calls in the end)."""
        self._granians = signal.getsignal(signal.SIGTERM)
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, self._begin)

    def _begin(self, signum, frame) -> None:
        if self._begun:
            return
        self._begun = True
        told = sum(worker.is_alive() for worker in self.server.wrks)
        os.write(self.tell, b"." * told)
        threading.Thread(
            target=self._finish, args=(signum, told), name="stopping", daemon=True
        ).start()

    def _finish(self, signum: int, workers: int) -> None:
        deadline = time.monotonic() + self.grace + LAST_WORDS + MARGIN
        heard = 0
        while heard < workers and time.monotonic() < deadline:
            ready, _, _ = select.select([self.said], [], [], deadline - time.monotonic())
            if ready:
                heard += len(os.read(self.said, workers))
        self._granians(signum, None)  # granian stops its workers, then the master
