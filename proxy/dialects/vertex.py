"""Vertex AI's prediction route (``POST /predict``), as llama-server's ``--gcp-compat``
serves it: a body of ``instances``, each a request in the API its ``@requestFormat`` names,
answered as ``predictions``, one per instance, in order. Pure."""

from __future__ import annotations

from typing import Any, Sequence

from proxy.core.fields import Fields
from proxy.dialects.dialect import Limits

FORMAT = "@requestFormat"
# each format Vertex AI names, and the path of the API its instances are requests of
FORMATS = {"chatCompletions": "/v1/chat/completions"}


def instances(body: Any, limits: Limits) -> list:
    """``(path, request body)`` of each instance; a whole answer each (no stream)."""
    fields = Fields(body)
    listed = fields.objects("instances")
    if not listed:
        raise fields.fail("instances", "must be a list of at least one request")
    if len(listed) > limits.max_batch:
        raise fields.fail("instances", f"may hold at most {limits.max_batch} requests")
    found = []
    for instance in listed:
        kind = instance.string(FORMAT)
        if kind not in FORMATS:
            raise instance.fail(FORMAT, f"must be one of {', '.join(FORMATS)}")
        if instance.boolean("stream"):
            raise instance.fail("stream", "must be false: predictions are whole answers")
        asked = {name: value for name, value in instance.body.items() if name != FORMAT}
        found.append((FORMATS[kind], asked))
    return found


def predictions(answers: Sequence[object]) -> dict:
    return {"predictions": list(answers)}


def placed(error: object, index: int) -> object:
    """An instance's error body, the field it names placed in its instance."""
    told = error.get("error") if isinstance(error, dict) else None
    if isinstance(told, dict) and isinstance(told.get("param"), str) and told["param"]:
        return {**error, "error": {**told, "param": f"instances[{index}].{told['param']}"}}
    return error
