"""Make the inspector's store of exchanges the settings describe."""

from __future__ import annotations

import os
from typing import Callable

from proxy.access.gate import Access
from proxy.config.catalog import Catalog
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.inspector.capture import Capture
from proxy.inspector.redis_exchanges import RedisExchanges
from proxy.inspector.sqlite_exchanges import SqliteExchanges
from proxy.redis_client import connect


def build_capture(
    settings: Settings, runtime: Runtime, access: Access, catalog: Callable[[], Catalog]
) -> Capture:
    """The exchanges kept for the inspector, where usage is (in Redis with ``--redis-url``,
    else in a SQLite file): everyone's, or those of the keys and the models (of the
    ``catalog`` served at the time) that ask for it."""
    stores = settings.stores
    bounds = {
        "max_count": stores.capture_max_exchanges,
        "max_bytes": stores.capture_max_mib * 1024 * 1024,
        "retention": stores.capture_retention * 86400,
    }
    if stores.redis_url:
        store = RedisExchanges(connect(stores.redis_url), **bounds)
    else:
        path = stores.exchanges_db or os.path.join(runtime.cache_dir, "exchanges.sqlite3")
        store = SqliteExchanges(path, **bounds)
    return Capture(
        store,
        everyone=settings.observing.capture == "on",
        keyed=any(key.capture for key in access.keyring.keys),
        catalog=catalog,
        outages=access.outages,
    )
