"""A server.cpp model's card: what its server and its file say it is and can do."""

from __future__ import annotations

import hashlib
import os
from typing import Optional

from proxy.backends.servercpp import gguffile
from proxy.backends.servercpp.chattemplate import THINK_CLOSE, THINK_OPEN, ChatTemplate
from proxy.config.files import digest
from proxy.core.answers import ModelCard

# words of a chat template that lets its models think (a switch, or where thoughts go back)
THINKING_WORDS = (
    THINK_OPEN,
    THINK_CLOSE,
    "enable_thinking",
    "reasoning_content",
    "<|channel|>analysis",
)


def card_of(
    model: str,
    props: dict,
    listed: dict,
    template: ChatTemplate,
    header: Optional[gguffile.GGUFFile] = None,
    path: str = "",
    *,
    chat_layer: bool = False,
    reranks: bool = False,
) -> ModelCard:
    """The card of ``model`` from the server's ``/props`` and its ``/v1/models`` entry's
    ``meta`` (``listed``), the template the proxy renders with, whether the server's own
    chat layer renders chats instead, the header of its file at ``path`` when the proxy can
    read it, and whether the server reranks (then that is all it does). Every chat model
    calls tools: through the chat layer where its template has them, else the proxy's way."""
    source = props.get("chat_template") or template.source
    thinking = any(word in source for word in THINKING_WORDS) if chat_layer else template.thinks
    modalities = props.get("modalities") or {}
    capabilities = (
        ("completion", "tools")
        + (("thinking",) if thinking else ())
        + (("vision",) if modalities.get("vision") else ())
        + (("audio",) if modalities.get("audio") else ())
    )
    if reranks:  # a server started with --reranking does nothing else
        capabilities = ("rerank",)
    settings = props.get("default_generation_settings") or {}
    return ModelCard(
        capabilities=capabilities,
        context_length=_count(settings.get("n_ctx")) or _count(listed.get("n_ctx")),
        architecture=header.architecture if header else "",
        parameters=(header.parameters if header else None) or _count(listed.get("n_params")),
        quantization=(header.quantization if header else "")
        or str(props.get("model_ftype") or listed.get("ftype") or ""),
        size=_count(listed.get("size")) or (os.path.getsize(path) if header else None),
        digest=digest(path)
        if header
        else hashlib.sha256(model.encode("utf-8", "surrogatepass")).hexdigest(),
        modified=os.path.getmtime(path) if header else None,
        template=source,
    )


def file_card(path: str, capabilities: tuple = ("completion",)) -> Optional[ModelCard]:
    """What the model file at ``path`` says, before its server (which its flags give
    ``capabilities``) has been asked (``None``: no GGUF the proxy can read)."""
    try:
        header = gguffile.read(path)
    except ValueError:
        return None
    return ModelCard(
        capabilities=capabilities,
        context_length=_count(header.of_architecture("context_length")),
        architecture=header.architecture,
        parameters=header.parameters,
        quantization=header.quantization,
        size=os.path.getsize(path),
        digest=digest(path),
        modified=os.path.getmtime(path),
    )


def _count(value) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
