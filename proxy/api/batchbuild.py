"""The batch runner made for the app: what it asks of the keys (the key a batch's owner is now,
whether it may use a model) and of the fleet (which model serves a name, how many requests of
it may start now) answered by the app's own."""

from __future__ import annotations

from typing import Optional

from proxy.access.batches import BatchStore
from proxy.access.files import FileStore
from proxy.api.batchrunner import BatchRunner
from proxy.api.state import limits_of
from proxy.core.errors import ModelNotFoundError


def batch_runner(app, files: FileStore, batches: BatchStore, queue, access, router, settings):
    """The runner of ``app``'s batches, with what it asks of the keys and the fleet."""
    at_once = settings.stores.batch_lines_at_once

    def served(key, model: str) -> str:
        """The id of the model that serves ``model`` for ``key``: a 404 where none does, a
        403 (or 404) where the key may not use it."""
        target = router.resolve(model)
        if not target.found:
            raise ModelNotFoundError(model[:64])
        if key is not None:
            access.check_model(key, model, target.id)
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
