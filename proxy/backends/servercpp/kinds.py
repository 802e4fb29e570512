"""What a server.cpp is, and which way a chat reaches it. Pure.

The kinds (their eras), and how to tell them apart:

powerinfer     PowerInfer's server (llama.cpp of Nov 2023): no /health, no /v1/models
llamacpp-2023  llama.cpp of Dec 2023: no /health, has /v1/models, ``error:`` stream lines
llamacpp       llama.cpp since 2024: /health, ``id_slot``, ``stop_type``, JSON errors; picks
               the slot whose cache shares the longest prefix with a prompt, and keeps the
               prompts it evicts in memory (``--cache-ram``) to load back

A server's chat layer (llama-server's ``/v1/chat/completions``) renders the model's template and
reads its calls and thoughts as llama.cpp does for that family, so a chat goes through it
wherever it honours all the chat asks. It does not always: a template with no tool syntax never
shows the model the tools (the server drops them, and a forced call comes back as text), and on
some vocabularies the server cannot build the sampler for a schema. Such a chat goes the proxy's
own way, as on servers without a chat layer: the template rendered here, the tools described in
the model's words, a grammar forcing a valid call or answer, on ``/completion``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from proxy.core.types import GenerationRequest

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


CHAT_LAYER = "chat layer"
OWN_WAY = "own way"


@dataclass(frozen=True)
class ChatLayer:
    """What a server's chat layer honours, as the proxy found on connecting."""

    tools: bool  # its template has tool syntax: the server forces and reads calls
    short_ids: bool = False  # its template takes only Mistral's call ids
    schemas: Optional[bool] = None  # it answers a chat by a JSON schema (None: not asked yet)

    def with_schemas(self, schemas: bool) -> "ChatLayer":
        return replace(self, schemas=schemas)


def asks_schema(request: GenerationRequest) -> bool:
    """Whether the chat constrains its answer by a JSON schema (``response_format``)."""
    return request.response_format is not None


def route(request: GenerationRequest, layer: Optional[ChatLayer]) -> str:
    """:data:`CHAT_LAYER` where the server's chat layer honours all ``request`` asks, else
    :data:`OWN_WAY` (raw prompts, servers without one). A layer not yet asked whether it
    takes schemas counts as one that does not."""
    if not request.is_chat or layer is None:
        return OWN_WAY
    if request.tools and not layer.tools:
        return OWN_WAY
    if request.tools and request.grammar is not None:  # the server refuses the two together
        return OWN_WAY
    if asks_schema(request) and not layer.schemas:
        return OWN_WAY
    return CHAT_LAYER
