"""Where this process keeps its files and finds the processes beside it: read from the
environment once, by whoever starts the proxy (``oai-proxy``, ``proxy.wsgi``, gunicorn's
master), and handed to the app factory, which reads no environment itself."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Optional

SUPERVISOR_ENV = "OAI_PROXY_SUPERVISOR"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for it


@dataclass(frozen=True)
class Runtime:
    """What the process around the app decides, as opposed to what the operator sets."""

    cache_dir: str  # usage and responses databases, server logs, saved KV caches
    metrics_folder: str = ""  # where gunicorn's workers write their metrics; empty: one process
    supervisor: Optional[tuple] = None  # (address, authkey) of the process running the servers
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # for key_env, children

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Runtime":
        authkey, _, address = environ.get(SUPERVISOR_ENV, "").partition("@")
        home = environ.get("HOME") or os.path.expanduser("~")
        return cls(
            cache_dir=os.path.join(home, ".cache", "oai-proxy"),
            metrics_folder=environ.get(METRICS_ENV, ""),
            supervisor=(address, bytes.fromhex(authkey)) if address else None,
            environ=environ,
        )

    def child_environment(self, library_dirs=()) -> dict:
        """The environment for a server the proxy starts: this one, with ``library_dirs`` in
        front of the loader's search path (a wheel's llama-server finds its libraries there)."""
        env = dict(self.environ)
        parts = [str(folder) for folder in library_dirs] + (
            [env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []
        )
        if parts:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(parts)
        return env


def share_metrics(folder: str) -> None:
    """Put every process forked from here in prometheus_client's multiprocess mode (it must
    happen before the library is first imported)."""
    os.environ[METRICS_ENV] = folder


def advertise_supervisor(address: str, authkey: bytes) -> None:
    """Tell the gunicorn workers forked from here where the model servers are run."""
    os.environ[SUPERVISOR_ENV] = f"{authkey.hex()}@{address}"
