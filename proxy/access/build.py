"""Make the access gate the settings describe (keys, limiter and usage store) and the store of
the responses the Responses API keeps."""

from __future__ import annotations

import hashlib
import os

from proxy.access.budgets import Budgets
from proxy.access.gate import Access
from proxy.access.journal import Journal
from proxy.access.keyring import Keyring, load_keyring, plain_keys
from proxy.access.limits import LocalLimiter, RedisLimiter
from proxy.access.stored import RedisRecords, SqliteRecords, StoredResponses
from proxy.access.usage import RedisUsage, SqliteUsage
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.core.outages import Outages
from proxy.redis_client import connect


def read_keys(settings: Settings, runtime: Runtime) -> list:
    """The ``--api-key`` keys and the keys file's, as they are now; a keys file that cannot be
    used is a ``ValueError`` naming it."""
    keys = plain_keys(settings.access.api_key)
    if settings.access.keys:
        keys += load_keyring(settings.access.keys, runtime.environ)
    names = [key.name for key in keys]
    if len(set(names)) < len(names):
        raise ValueError(f"{settings.access.keys}: a key is named like an --api-key key (key-N)")
    return keys


def build_outages(settings: Settings) -> Outages:
    """The watch over the proxy's own stores, named as refusals name them."""
    if settings.stores.redis_url:
        return Outages("Redis", remote=True)
    return Outages("a SQLite file")


def build_access(settings: Settings, runtime: Runtime, outages: Outages) -> Access:
    """A keys file that cannot be used is a ``ValueError`` naming it. Charges the usage
    store cannot take yet are journaled beside it (a SQLite file's folder), or in the cache
    folder under the Redis's own name: a journal is only ever replayed into its store."""
    keys = read_keys(settings, runtime)
    admin = settings.access.admin_key.encode("utf-8")
    url = settings.stores.redis_url
    if url:
        client = connect(url)
        usage, limiter = RedisUsage(client), RedisLimiter(client)
        named = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        journal = os.path.join(runtime.cache_dir, "journal", f"redis-{named}")
    else:
        path = settings.stores.usage_db or os.path.join(runtime.cache_dir, "usage.sqlite3")
        usage, limiter = SqliteUsage(path), LocalLimiter()
        journal = path + ".journal"
    return Access(Keyring(keys), limiter, Journal(usage, outages, journal), admin, Budgets(usage))


def build_responses(settings: Settings, runtime: Runtime, outages: Outages) -> StoredResponses:
    """Stored responses in Redis with ``--redis-url``, else in a SQLite file."""
    retention = settings.stores.responses_retention * 86400
    if settings.stores.redis_url:
        records = RedisRecords(connect(settings.stores.redis_url))
    else:
        records = SqliteRecords(
            settings.stores.responses_db or os.path.join(runtime.cache_dir, "responses.sqlite3")
        )
    return StoredResponses(records, retention, outages)
