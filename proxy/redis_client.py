"""Redis, which every proxy process shares with ``--redis-url``: one way to connect to it."""

from __future__ import annotations

TIMEOUT = 2.0  # seconds: a Redis that stalls longer counts as gone


def connect(url: str, timeout: float = TIMEOUT, retry: bool = True):
    """A ``redis.Redis`` for ``url`` (the package is needed only with ``--redis-url``);
    ``retry=False`` fails at the first error, for callers that have a way on without it."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = {} if retry else {"retry": Retry(NoBackoff(), 0)}
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, **options
    )
