"""The kinds of server.cpp the proxy speaks to (their eras), and how to tell them apart.

powerinfer     PowerInfer's server (llama.cpp of Nov 2023): no /health, no /v1/models
llamacpp-2023  llama.cpp of Dec 2023: no /health, has /v1/models, ``error:`` stream lines
llamacpp       llama.cpp since 2024: /health, ``id_slot``, ``stop_type``, JSON errors; picks
               the slot whose cache shares the longest prefix with a prompt, and keeps the
               prompts it evicts in memory (``--cache-ram``) to load back
"""

from __future__ import annotations

from dataclasses import dataclass

INFILL, IDS, TEXT = "infill", "ids", "text"


@dataclass(frozen=True)
class ServerKind:
    """What differs on the wire between server kinds."""

    name: str
    slot_field: str
    legacy: bool  # aborts on mistyped fields, n_predict < 3 ignored, non-stream logprobs empty
    has_json_schema: bool
    has_props_template: bool
    finds_slots: bool  # sends a prompt to the slot that holds its prefix by itself
    # how a gap is filled: the server's own ``POST /infill`` builds the prompt (INFILL), or
    # the proxy sends it as token ids and texts (IDS) or as text with the tokens' texts (TEXT)
    fills: str


POWERINFER = ServerKind(
    "powerinfer",
    "slot_id",
    legacy=True,
    has_json_schema=False,
    has_props_template=False,
    finds_slots=False,
    fills=IDS,
)
LLAMACPP_2023 = ServerKind(
    "llamacpp-2023",
    "slot_id",
    legacy=True,
    has_json_schema=False,
    has_props_template=False,
    finds_slots=False,
    fills=TEXT,
)
LLAMACPP = ServerKind(
    "llamacpp",
    "id_slot",
    legacy=False,
    has_json_schema=True,
    has_props_template=True,
    finds_slots=True,
    fills=INFILL,
)


def classify(health_status: int, models_status: int | None) -> ServerKind:
    """Pick the kind from the status of ``GET /health`` and, if needed, ``/v1/models``.

    Only current servers have /health (200 ready, 503 loading); of the two older ones only
    the 2023 llama.cpp has /v1/models.
    """
    if health_status != 404:
        return LLAMACPP
    return LLAMACPP_2023 if models_status == 200 else POWERINFER
