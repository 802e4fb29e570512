"""What ``/status``, the fleet page and ``/health`` show whom: public means harmless.

The full status names upstream addresses, model files, log paths and servers' errors (which
quote their output); only the admin, presenting the admin key as a bearer token, sees it.
Everyone else sees at most what a client of the API already knows, plus load:

- **the admin key**: everything, as the admin API shows it (a server's secrets blanked
  there too, :mod:`proxy.servers.showing`);
- **a client key**: the models that key may use (every model for a key without a list),
  each with its aliases, its replicas' health, generation, slots busy and known, requests
  queued, tokens and charts, and for a server the proxy runs its state and memory;
  replicas are numbered, not addressed;
- **no key, on a proxy without keys**: the same for every model (any client may use them
  all, and ``GET /v1/models`` lists them anyway);
- **no key, on a proxy with keys** (or a key it does not know): only the overall state, no
  model at all (a hidden model, or any model's id, is for its keys to know).

``/health`` tells anyone but the admin whether the proxy is healthy (its status and code)
and nothing else: monitors need no more, and its detail is the full status's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from proxy.access.keyring import KeySpec

PUBLIC_REPLICA = ("generation", "ok", "in_rotation", "busy", "queued", "slots")
PUBLIC_SERVER = ("state", "in_flight", "ttl", "idle_seconds", "memory")


@dataclass(frozen=True)
class Viewer:
    """Who looks: ``admin``, or someone who may see the models whose ids are in ``models``
    (``None``: every model; empty: none); ``kind`` says which, for the page."""

    kind: str  # admin, key or anonymous
    models: Optional[frozenset] = None

    @property
    def admin(self) -> bool:
        return self.kind == "admin"

    def sees(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models


def viewer(*, admin: bool, key: Optional[KeySpec], keys_required: bool) -> Viewer:
    """The viewer a request is: the admin key's holder, a client key's, or anonymous."""
    if admin:
        return Viewer("admin")
    if key is not None:
        return Viewer("key", frozenset(key.models) if key.models else None)
    return Viewer("anonymous", frozenset() if keys_required else None)


def seen(status: dict, viewer: Viewer) -> dict:
    """The fleet's ``status`` (``/status``'s, the page's) as ``viewer`` may see it."""
    if viewer.admin:
        return {**status, "viewer": viewer.kind}
    models = [_model(model) for model in status["models"] if viewer.sees(model["label"])]
    labels = {model["label"] for model in models}
    return {
        "ok": status["ok"],
        "key_required": status["key_required"],
        "models": models,
        "history": {
            label: points for label, points in status["history"].items() if label in labels
        },
        "time": status["time"],
        "viewer": viewer.kind,
    }


def health_seen(body: dict, viewer: Viewer) -> dict:
    """``/health``'s ``body`` as ``viewer`` may see it: whole for the admin, else its
    status alone."""
    return body if viewer.admin else {"status": body["status"]}


def _model(model: dict) -> dict:
    return {
        "id": model["id"],
        "label": model["label"],
        "aliases": model["aliases"],
        "completion_tokens": model["completion_tokens"],
        "replicas": [
            _replica(replica, number) for number, replica in enumerate(model["replicas"], 1)
        ],
    }


def _replica(replica: dict, number: int) -> dict:
    shown = {
        "replica": number,
        **{field: replica[field] for field in PUBLIC_REPLICA if field in replica},
    }
    managed = replica.get("managed")
    if managed is not None:
        shown["managed"] = {field: managed[field] for field in PUBLIC_SERVER if field in managed}
    return shown
