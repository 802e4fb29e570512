"""Production defaults for gunicorn, shared by ``gunicorn.conf.py`` and ``oai-proxy --server gunicorn``."""
from __future__ import annotations

import sys
from typing import Optional

from gunicorn.config import Config

from proxy.config import Settings, supervisor_address
from proxy.fleet.supervisor import SupervisorProcess, start_supervisor
from proxy.gunicorn_worker import patient_worker


class SupervisorHooks:
    """gunicorn's master starts the process that runs the model servers, and stops it last.

    Workers come and go (a crash, ``--max-requests``); the servers must not go with them.
    When ``oai-proxy --server gunicorn`` started the supervisor already, these leave it be.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.supervisor: Optional[SupervisorProcess] = None

    def on_starting(self, arbiter) -> None:
        if supervisor_address():
            return
        try:
            self.supervisor = start_supervisor(self.settings)
        except ValueError as exc:
            sys.exit(f"oai-proxy: {exc}")

    def on_exit(self, arbiter) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()


def gunicorn_options(settings: Settings) -> dict:
    """Threaded workers sized for long-lived streams: each open stream holds a thread.

    Threads also read requests, so clients that stall half-way are dropped after
    ``--client-timeout`` (see :mod:`proxy.gunicorn_worker`).
    """
    hooks = SupervisorHooks(settings)
    return {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": patient_worker(settings.client_timeout),
        "threads": settings.threads,
        # gunicorn's default (1000) caps the open connections per worker, so threads beyond
        # that never get a stream; keep its 1000 idle keep-alive slots on top of one per thread
        "worker_connections": settings.threads + 1000,
        # a generation can stream for minutes; the upstream timeout bounds it instead
        "timeout": int(settings.upstream_timeout) + 30,
        # our own grace first (streams end with an error event), then gunicorn's kill
        "graceful_timeout": int(settings.graceful_timeout) + 5,
        "keepalive": 5,
        "accesslog": "-",
        "loglevel": settings.log_level,
        "on_starting": hooks.on_starting,
        "on_exit": hooks.on_exit,
        # newer gunicorn opens a control socket at one fixed path per user: every proxy on the
        # host would take it from the one before, and the proxy needs none
        **({"control_socket_disable": True}
           if "control_socket_disable" in Config().settings else {}),
    }
