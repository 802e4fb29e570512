"""Which way a chat reaches a server: through its own chat layer, or the proxy's own way. Pure.

A server's chat layer (llama-server's ``/v1/chat/completions``) renders the model's template
and reads its calls and thoughts as llama.cpp does for that family, so a chat goes through it
wherever it honours all the chat asks. It does not always: a template with no tool syntax
never shows the model the tools (the server drops them, and a forced call comes back as
text), and on some vocabularies the server cannot build the sampler for a schema. Such a chat
goes the proxy's own way, as on servers without a chat layer: the template rendered here, the
tools described in the model's words, a grammar forcing a valid call or answer, on
``/completion``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from proxy.core.types import GenerationRequest

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
