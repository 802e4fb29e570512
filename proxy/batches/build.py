"""The files and batches made from the settings: their stores in ``--files-dir`` (or the cache
folder), the queue of their requests (every proxy's in Redis with ``--redis-url``), and their
runner, what it asks of the keys (the key a batch's owner is now, whether it may use a model)
and of the fleet (which model serves a name, how many requests of it may start now) answered
by the app's own; held on the app for the views (:func:`get_batches`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from flask import current_app

from proxy.api.kinds import kind_of
from proxy.api.state import limits_of
from proxy.batches.files import FileStore
from proxy.batches.queue import LocalBatchQueue
from proxy.batches.redisqueue import RedisBatchQueue
from proxy.batches.runner import BatchRunner
from proxy.batches.store import BatchStore
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.core.errors import ModelNotFoundError
from proxy.redis_client import connect


@dataclass(frozen=True)
class BatchesState:
    """The files clients upload and batches write, the batches clients made, and what runs
    them."""

    files: FileStore
    batches: BatchStore
    runner: BatchRunner


def get_batches() -> BatchesState:
    return current_app.extensions["batches"]


def build_batches(app, settings: Settings, runtime: Runtime, access, router) -> BatchesState:
    """The files and batches of ``app``, held on it, their runner not started yet."""
    stores = settings.stores
    folder = stores.files_dir or os.path.join(runtime.cache_dir, "files")
    files = FileStore(folder, max_bytes=stores.max_file_size, max_lines=stores.max_batch_lines,
                      per_key=stores.files_per_key, bytes_per_key=stores.files_bytes_per_key,
                      reserve=stores.files_reserve,
                      retention=int(stores.files_retention * 86400))  # fmt: skip
    batches = BatchStore(folder, reserve=stores.files_reserve)
    if stores.redis_url:
        queue = RedisBatchQueue(connect(stores.redis_url), batches.runner)
    else:
        queue = LocalBatchQueue()
    made = BatchesState(files, batches, batch_runner(app, files, batches, queue, access, router,
                                                      settings))  # fmt: skip
    app.extensions["batches"] = made
    return made


def batch_runner(app, files: FileStore, batches: BatchStore, queue, access, router, settings):
    """The runner of ``app``'s batches, with what it asks of the keys and the fleet."""
    at_once = settings.stores.batch_lines_at_once

    def served(key, model: str, endpoint: str) -> str:
        """The id of the model that serves ``model`` for ``key``: a 404 where none does, a
        403 (or 404) where the key may not use it, or not ask it for what ``endpoint``
        makes."""
        target = router.resolve(model)
        if not target.found:
            raise ModelNotFoundError(model[:64])
        if key is not None:
            access.check_model(key, model, target.id)
            kind = kind_of(app.url_map.bind("").match(endpoint, "POST")[0])
            if kind is not None:
                access.check_kind(key, model, target.id, kind)
        return target.id

    def room(model: str) -> int:
        for served_model in router.status():
            if served_model["label"] == model:
                return sum(free_slots(replica, at_once) for replica in served_model["replicas"])
        return at_once  # a model not served: its requests are answered 404 at once

    return BatchRunner(app, files, batches, queue, access.outages, key=access.owned,
                       keyed=access.required, served=served, room=room, at_once=at_once,
                       limits=limits_of(settings),
                       retention=settings.stores.files_retention * 86400)  # fmt: skip


def free_slots(replica: dict, unknown: Optional[int]) -> int:
    """A replica's free slots while nobody waits for one (``unknown`` when it has not said
    how many it has)."""
    if replica.get("queued"):
        return 0
    slots = replica.get("slots")
    return max(0, slots - (replica.get("busy") or 0)) if slots else unknown
