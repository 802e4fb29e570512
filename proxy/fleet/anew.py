"""Serving another catalog while the proxy serves: a model pulled or deleted, or the models
file read again. A model unchanged keeps its replicas and the conversations they hold; one
removed or changed finishes what it has in flight before its server stops.

In one process the fleet changes at once. Under gunicorn or granian, the supervisor runs the
new catalog's servers and the master starts its workers afresh (``SIGHUP``: the streams in
flight finish, the new workers read the files anew).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable

from proxy.config.catalog import Catalog
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.fleet.build import Models
from proxy.fleet.fleet import Fleet
from proxy.servers.remote import Supervised


class Anew:
    """Serve a catalog in place of the fleet's."""

    def __init__(self, fleet: Fleet, models: Models, settings: Settings, runtime: Runtime) -> None:
        self.fleet = fleet
        self.models = models
        self.settings = settings
        self.runtime = runtime

    def serve(self, catalog: Callable[[], Catalog]) -> None:
        """Serve what ``catalog()`` gives from now on (the supervisor's own reading of it,
        with one): a ``ValueError`` saying why it cannot be read leaves the fleet as it was."""
        if self.runtime.supervisor:
            Supervised(*self.runtime.supervisor).call("refresh")
            os.kill(os.getppid(), signal.SIGHUP)  # the master starts new workers
            return
        for model in self.fleet.serve_instead(catalog(), self.models.served):
            threading.Thread(
                target=self.fleet.retire,
                args=(model, self.settings.serving.graceful_timeout),
                name=f"retire-{model.spec.id}",
                daemon=True,
            ).start()
