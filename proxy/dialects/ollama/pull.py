"""Ollama's model management, on the models the proxy fetches from a hub: ``/api/pull`` and
``/api/delete`` read, and a pull's progress written in Ollama's own lines (``pulling
manifest``; ``pulling <digest>`` with ``digest``, ``total`` and ``completed`` as each file
comes; ``verifying sha256 digest``; ``writing manifest``; ``success``), which Ollama's
clients show as progress bars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.core.errors import ProxyError
from proxy.core.fields import Fields
from proxy.dialects.ollama.answer import error_body
from proxy.dialects.streaming import Lines

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


class PullLines(Lines):
    """A pull's progress as newline-delimited JSON; a failure once it has begun is its last
    line, an ``error`` (the one Ollama's clients raise)."""

    @staticmethod
    def failure(error: ProxyError) -> list:
        return [error_body(error)]
