"""The managed server a ``[models.<id>]`` table asks for: its ``cmd`` or ``model`` (a file, or
one on a hub), arguments (a file of theirs on a hub too), vision projector, reranking, idle
stop, preload and when it saves its KV caches; the paths in them taken from the models
file's folder.
"""

from __future__ import annotations

import shlex
from typing import Optional

from proxy.config.catalog import ManagedSpec
from proxy.config.files import resolved, resolved_arguments
from proxy.config.hubref import HubFileReference, HubReference

SLOT_SAVES = ("on-stop", "every-turn", "off")  # when a server the proxy runs saves its KV caches


def managed_spec(spec: dict, key: str, fail, folder: str) -> Optional[ManagedSpec]:
    """The server to run for a servercpp model that names a ``cmd`` or a ``model`` file (or
    a model on a hub); the paths in them taken from the models file's ``folder``."""
    if "cmd" not in spec and "model" not in spec:
        for name in ("args", "ttl", "preload", "slot_save", "mmproj", "reranking"):
            if name in spec:
                raise fail(f"{key}.{name}", "belongs to a model the proxy runs (cmd or model)")
        return None
    command = None
    if "cmd" in spec:
        if not isinstance(spec["cmd"], str) or "${PORT}" not in spec["cmd"]:
            raise fail(f"{key}.cmd", "must be a command line with ${PORT} in it")
        command = resolved_arguments(shlex.split(spec["cmd"]), folder)
        _files_on_hubs(command, f"{key}.cmd", fail)
    model = spec.get("model", "")
    if not isinstance(model, str) or ("cmd" not in spec and not model):
        raise fail(f"{key}.model", "must be the path of a model file, or hf:<org>/<repo>")
    try:
        HubReference.parse(model)
    except ValueError as exc:
        raise fail(f"{key}.model", str(exc)) from None
    args = spec.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise fail(f"{key}.args", "must be a list of strings")
    _files_on_hubs(args, f"{key}.args", fail)
    mmproj = spec.get("mmproj", "")
    if not isinstance(mmproj, str):
        raise fail(f"{key}.mmproj", "must be the path of a vision projector file")
    if not isinstance(spec.get("reranking", False), bool):
        raise fail(f"{key}.reranking", "must be true or false")
    args = [
        *resolved_arguments(args, folder),
        *(["--mmproj", resolved(mmproj, folder)] if mmproj else []),
        *(["--reranking"] if spec.get("reranking") else []),
    ]
    ttl = spec.get("ttl", 0)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0:
        raise fail(f"{key}.ttl", "must be a number of seconds (0 = never stop)")
    if not isinstance(spec.get("preload", False), bool):
        raise fail(f"{key}.preload", "must be true or false")
    slot_save = spec.get("slot_save", "on-stop")
    if slot_save not in SLOT_SAVES:
        raise fail(f"{key}.slot_save", f"must be one of {', '.join(SLOT_SAVES)}, got {slot_save!r}")
    return ManagedSpec(
        command,
        resolved(model, folder),
        tuple(args),
        float(ttl),
        spec.get("preload", False),
        slot_save,
    )


def _files_on_hubs(words, key: str, fail) -> None:
    """Each word of a server's command line that names a file on a hub names one file."""
    for index, word in enumerate(words):
        try:
            HubFileReference.parse(word)
        except ValueError as exc:
            raise fail(f"{key}[{index}]", str(exc)) from None
