"""What the pages and browsers may see and do: who sees what on the public pages, and what a web
page may make a browser send the proxy.

What ``/status``, the fleet page and ``/health`` show whom: public means harmless.

The full status names upstream addresses, model files, log paths and servers' errors (which
quote their output); only the admin, presenting the admin key as a bearer token, sees it.
Everyone else sees at most what a client of the API already knows, plus load:

- **the admin key**: everything, as the admin API shows it (a server's secrets blanked
  there too, :mod:`proxy.servers.showing`);
- **a client key**: the models that key may use (every model for a key without a list),
  each with its aliases, what it does, its replicas' health, generation, slots busy and
  known, requests queued, tokens and charts, and for a server the proxy runs its state and
  memory; replicas are numbered, not addressed;
- **no key, on a proxy without keys**: the same for every model (any client may use them
  all, and ``GET /v1/models`` lists them anyway);
- **no key, on a proxy with keys** (or a key it does not know): only the overall state, no
  model at all (a hidden model, or any model's id, is for its keys to know).

``/health`` tells anyone but the admin whether the proxy is healthy (its status and code) and
nothing else: monitors need no more, and its detail is the full status's.

What a web page may make a browser send the proxy. Pure.

A page on any site can make its visitor's browser send requests to the proxy: a cross-site
``text/plain`` POST needs no CORS preflight, and a name the attacker owns can be made to resolve
to 127.0.0.1 a moment after the page loads (DNS rebinding), so that even the page's own-origin
requests reach a proxy on loopback. Two checks close both doors, as Ollama's do:

- a proxy bound to a loopback address serves only the ``Host`` names that mean this machine
  (``localhost``, loopback addresses) and those the operator adds (``--allowed-hosts``): a
  rebound name is not among them;
- a request that carries an ``Origin`` (browsers send one with every cross-site request and
  every POST) must come from the proxy's own origin, a page on this machine (a loopback
  origin, any port) or an origin the operator allows (``--cors-origins``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Collection, Optional
from urllib.parse import urlsplit

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
        return Viewer("key", frozenset(key.models) if key.restricted else None)
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
        # whose they are is the admin's to see, unless the proxy has no keys
        "batches": status["batches"] if not status["key_required"] else [],
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
        "capabilities": model["capabilities"],
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


LOCAL_NAMES = ("localhost", "localhost.")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without port or brackets) is this machine's
    loopback."""
    host = host.lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, without its port or an IPv6 address's brackets."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def host_served(host_header: str, bound: Collection[str], allowed: Collection[str]) -> bool:
    """Whether a proxy listening on the addresses ``bound`` serves a request for
    ``host_header``."""
    if not all(is_loopback(address) for address in bound):
        return True
    name = host_name(host_header)
    return is_loopback(name) or name.lower() in {host.lower() for host in allowed}


def origin_allowed(origin: str, host_header: str, allowed: Collection[str]) -> bool:
    """Whether a request from a page of ``origin`` may reach the proxy it names in
    ``host_header``: a page of the proxy's own (whichever scheme a TLS front speaks), of this
    machine, or of an origin the operator allows."""
    if "*" in allowed or origin in allowed:
        return True
    try:
        url = urlsplit(origin)
        hostname = url.hostname
    except ValueError:
        return False
    if url.scheme not in ("http", "https") or hostname is None:
        return False
    return url.netloc.lower() == host_header.strip().lower() or is_loopback(hostname)
