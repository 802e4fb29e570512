"""Ollama's model catalog: what its clients ask of the models before they pick one, and the models
they pull and delete.

What Ollama's clients ask of the models before they pick one: ``/api/tags``, ``/api/show``,
``/api/ps``, ``/api/version``; each model under an explicit tag (``:latest``), as Ollama lists
them.

Ollama's model management, on the models the proxy downloads from a hub: ``/api/pull`` and
``/api/delete`` read, and a pull's progress written in Ollama's own lines (``pulling manifest``;
``pulling <digest>`` with ``digest``, ``total`` and ``completed`` as each file comes;
``verifying sha256 digest``; ``writing manifest``; ``success``), which Ollama's clients show as
progress bars.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

from proxy.core.answers import ModelCard, ModelInfo
from proxy.core.errors import ProxyError
from proxy.core.fields import Fields
from proxy.dialects.ollama.answer import error_body
from proxy.dialects.streaming import LinesOf

VERSION = "0.12.0"  # Ollama's API as this dialect speaks it (clients check for >= 0.6.4)
TAG = "latest"


def tagged(name: str) -> str:
    """``name`` with a tag, as Ollama's clients expect every name to have."""
    return name if ":" in name else f"{name}:{TAG}"


def shown_name(body: Any) -> str:
    """The model ``/api/show`` asks about (``model``, or the older ``name``)."""
    fields = Fields(body)
    name = fields.string("model") or fields.string("name")
    if not name:
        raise fields.fail("model", "is required")
    return name


def tags(models: Sequence[ModelInfo]) -> dict:
    """``/api/tags``: every model and alias."""
    return {"models": [_entry(model) for model in models]}


def _entry(model: ModelInfo) -> dict:
    card = model.card
    name = tagged(model.id)
    digest = card.digest or hashlib.sha256(model.id.encode("utf-8", "surrogatepass")).hexdigest()
    return {
        "name": name,
        "model": name,
        "modified_at": _time(card.modified),
        "size": card.size or 0,
        "digest": digest,
        "details": details(card),
    }


def details(card: ModelCard) -> dict:
    family = card.architecture or "unknown"
    return {
        "parent_model": "",
        "format": "gguf" if card.architecture != "chatglm" else "ggml",
        "family": family,
        "families": [family],
        "parameter_size": _billions(card.parameters),
        "quantization_level": card.quantization,
    }


def show(model: ModelInfo, name: str) -> dict:
    """``/api/show``: what the model is and can do; ``<arch>.context_length`` is the context
    its server gives a conversation, when it says."""
    card = model.card
    arch = card.architecture or "unknown"
    info = {"general.architecture": arch, "general.basename": name}
    if card.parameters:
        info["general.parameter_count"] = card.parameters
    if card.context_length:
        info[f"{arch}.context_length"] = card.context_length
    return {
        "license": "",
        "modelfile": "",
        "parameters": "",
        "template": card.template,
        "details": details(card),
        "model_info": info,
        "capabilities": list(card.capabilities),
        "modified_at": _time(card.modified),
    }


def ps(models: Sequence[ModelInfo], running: dict) -> dict:
    """``/api/ps``: the models whose servers run now; ``running`` maps a model's id to
    ``(bytes it takes, when it will stop as a timestamp or None)``."""
    listed = []
    for model in models:
        if model.id not in running:
            continue
        size, expires = running[model.id]
        entry = _entry(model)
        entry.update(
            size=size,
            size_vram=0,
            expires_at=_time(expires, forever=True),
            context_length=model.card.context_length or 0,
        )
        listed.append(entry)
    return {"models": listed}


def running(status: Sequence[dict], now: float) -> dict:
    """Which models run now, from the fleet's status: ``{id: (bytes, expiry or None)}``. A
    server run elsewhere is always loaded; one the proxy runs, while ready, until its idle
    time runs out."""
    found = {}
    for model in status:
        for replica in model["replicas"]:
            managed = replica.get("managed")
            if managed is None and replica["in_rotation"]:
                found[model["id"]] = (0, None)
            elif managed is not None and managed["state"] == "ready":
                memory, ttl = managed["memory"], managed.get("ttl") or 0
                expires = now + ttl - managed["idle_seconds"] if ttl else None
                found[model["id"]] = (memory["measured"] or memory["estimate"], expires)
    return found


def version() -> dict:
    return {"version": VERSION}


def _billions(parameters: Optional[int]) -> str:
    if not parameters:
        return ""
    if parameters >= 1e9:
        return f"{parameters / 1e9:.1f}B"
    return f"{parameters / 1e6:.0f}M"


def _time(seconds: Optional[float], forever: bool = False) -> str:
    """An RFC 3339 time; none known: the epoch (or, for ``forever``, far in the future)."""
    if seconds is None:
        seconds = 253402300799 if forever else 0  # 9999-12-31T23:59:59Z
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


MANIFEST = {"status": "pulling manifest"}
VERIFYING = {"status": "verifying sha256 digest"}
WRITING = {"status": "writing manifest"}
SUCCESS = {"status": "success"}


@dataclass(frozen=True)
class Pull:
    """What a client pulls, and whether it reads the progress (Ollama streams unless the
    body says ``"stream": false``)."""

    name: str
    stream: bool = True


def parse_pull(body: Any) -> Pull:
    fields = Fields(body)
    stream = fields.boolean("stream")
    return Pull(_name(fields), stream is not False)


def parse_delete(body: Any) -> str:
    return _name(Fields(body))


def _name(fields: Fields) -> str:
    """``model``, or the older ``name`` (which Ollama's JavaScript client still sends)."""
    name = fields.string("model") or fields.string("name")
    if not name:
        raise fields.fail("model", "is required")
    return name


def downloading(sha256: str, done: int, total: int) -> dict:
    """A file's progress, named by its digest as Ollama names a layer's."""
    return {
        "status": f"pulling {sha256[:12]}",
        "digest": f"sha256:{sha256}",
        "total": total,
        "completed": done,
    }


class PullLines(LinesOf):
    """A pull's progress as newline-delimited JSON; a failure once it has begun is its last
    line, an ``error`` (the one Ollama's clients raise)."""

    @staticmethod
    def failure(error: ProxyError) -> list:
        return [error_body(error)]
