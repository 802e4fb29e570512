"""Production defaults for gunicorn, shared by ``gunicorn.conf.py`` and ``oai-proxy --server gunicorn``."""
from __future__ import annotations

from proxy.config import Settings


def gunicorn_options(settings: Settings) -> dict:
    """Threaded workers sized for long-lived streams: each open stream holds a thread."""
    return {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        # a generation can stream for minutes; the upstream timeout bounds it instead
        "timeout": int(settings.upstream_timeout) + 30,
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": "-",
        "loglevel": settings.log_level,
    }
