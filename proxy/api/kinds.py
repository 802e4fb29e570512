"""What each view asks a model to make, as a key's ``kinds`` grant it (the keys file): the
views that ask a model for nothing it makes (a listing, a count of tokens, a pull) are
none of these, and no grant of a kind bounds them."""

from __future__ import annotations

from typing import Optional

KIND_OF_VIEW = {
    "openai.create_chat_completion": "text",
    "openai.create_completion": "text",
    "openai.create_fim_completion": "text",
    "anthropic.create_message": "text",
    "responses.create_response": "text",
    "ollama.chat_view": "text",
    "ollama.generate_view": "text",
    "glm.chat": "text",
    "glm.chat_stream": "text",
    "native.complete": "text",
    "llamacpp.fill": "text",
    "openai.create_embedding": "embedding",
    "ollama.embed_view": "embedding",
    "ollama.embeddings_view": "embedding",
    "glm.embedding": "embedding",
    "rerank.rerank_documents": "rerank",
    "audio.transcribe": "transcription",
    "audio.translate": "transcription",
    "audio.speak": "speech",
    "pictures.generate": "image",
    "pictures.edit": "image",
}


def kind_of(view: Optional[str]) -> Optional[str]:
    """What the view ``view`` (a Flask endpoint, ``openai.create_chat_completion``) asks a
    model to make (``None``: nothing a grant of a kind bounds)."""
    return KIND_OF_VIEW.get(view or "")
