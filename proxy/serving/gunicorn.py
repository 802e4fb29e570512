"""Production defaults for gunicorn, shared by ``gunicorn.conf.py`` and
``oai-proxy --server gunicorn``."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Optional

from gunicorn.config import Config
from gunicorn.glogging import Logger

from proxy.config.runtime import Runtime, share_metrics
from proxy.config.settings import Settings
from proxy.logs import Formatter
from proxy.servers.supervisor import SupervisorProcess, start_supervisor
from proxy.serving.reloading import refresh_supervisor, watch_files
from proxy.serving.worker import patient_worker


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
    ``--client-timeout`` (see :mod:`proxy.serving.worker`).
    """
    hooks = MasterHooks(settings)
    return {
        "bind": [f"{settings.serving.host}:{settings.serving.port}"],
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
