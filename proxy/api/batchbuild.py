"""The batch runner made for the app: what it asks of the keys (a key's secret, whether it may
use a model) and of the fleet (how many requests of a model may start now) answered by the
app's own."""

from __future__ import annotations

from typing import Optional

from proxy.access.batches import BatchStore
from proxy.access.files import FileStore
from proxy.api.batchrunner import BatchRunner
from proxy.core.errors import ProxyError


def batch_runner(app, files: FileStore, batches: BatchStore, queue, access, router, settings):
    """The runner of ``app``'s batches, with what it asks of the keys and the fleet."""
    at_once = settings.stores.batch_lines_at_once

    def key_named(name: str):
        if access.admin is not None and name == access.admin.name:
            return access.admin
        return next((key for key in access.keyring.keys if key.name == name), None)

    def secret(name: str) -> Optional[bytes]:
        key = key_named(name)
        return key.secret if key is not None else None

    def may_use(name: str, model: str) -> Optional[str]:
        key = key_named(name)
        if key is None:
            return None if not access.required else f"the key {name!r} is no longer known"
        try:
            access.check_model(key, model, router.counted_as(model))
        except ProxyError as exc:
            return exc.message
        return None

    def room(model: str) -> int:
        label = router.counted_as(model)  # the model that serves the name
        for served in router.status():
            if served["label"] == label:
                return sum(free_slots(replica, at_once) for replica in served["replicas"])
        return at_once  # a model not served: its requests are answered 404 at once

    return BatchRunner(app, files, batches, queue, access.outages, secret=secret, room=room,
                       may_use=may_use, at_once=at_once,
                       longest=settings.limits.max_body_size)  # fmt: skip


def free_slots(replica: dict, unknown: int) -> int:
    """A replica's free slots while nobody waits for one (``unknown`` when it has not said
    how many it has)."""
    if replica.get("queued"):
        return 0
    slots = replica.get("slots")
    return max(0, slots - (replica.get("busy") or 0)) if slots else unknown
