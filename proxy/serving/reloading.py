"""Reloads under a server with a master and workers (gunicorn, granian). ``SIGHUP`` starts the
workers afresh, each reading the keys file and the models file as it starts, once the
supervisor serves the models file (:func:`refresh_supervisor`, the servers' reload hook).
With ``--watch``, the master looks at both files and sends itself that ``SIGHUP`` when
either changes and both still parse: a worker that could not read them would stop the proxy,
so a file that does not parse is refused here, and the reason logged."""

from __future__ import annotations

import logging
import os
import signal
from typing import Optional

from proxy.access.build import read_keys
from proxy.config.build import from_settings
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.ops.filewatch import FileWatch
from proxy.servers.remote import Supervised

logger = logging.getLogger(__name__)


def refresh_supervisor() -> None:
    """The servers the proxy runs follow the models file (and the models pulled)."""
    runtime = Runtime.from_environment()
    if runtime.supervisor:
        try:
            Supervised(*runtime.supervisor).call("refresh")
        except Exception as exc:  # the workers still start afresh
            logger.warning("the models' servers were not refreshed: %s", exc)


def restart_when_valid(settings: Settings) -> None:
    """Start the workers afresh, once both files still parse."""
    try:
        read_keys(settings, Runtime.from_environment())
        from_settings(settings)
    except ValueError as exc:
        logger.warning("reload refused, the configuration is kept: %s", exc)
        return
    os.kill(os.getpid(), signal.SIGHUP)


def watch_files(settings: Settings) -> Optional[FileWatch]:
    """With ``--watch on``, the files watched from this (the master's) process."""
    files = [path for path in (settings.access.keys, settings.models.config) if path]
    if settings.access.watch != "on" or not files:
        return None
    return FileWatch(files, lambda: restart_when_valid(settings)).start()
