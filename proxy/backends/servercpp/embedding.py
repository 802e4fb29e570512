"""Embeddings and tokens from a server.cpp, in the shape of whichever generation answers."""
from __future__ import annotations

import math
from typing import Sequence

from proxy.backends.servercpp.client import UpstreamClient
from proxy.errors import NotImplementedByBackendError, UpstreamError, UpstreamUnavailableError
from proxy.types import Embeddings


class TokenClient:
    """``/tokenize``, ``/detokenize`` and ``/embedding`` on one server.cpp."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client

    def tokenize(self, text: str) -> list:
        """``(id, piece)`` pairs; pieces come from the server when it can say them."""
        body = self.client.post_json("/tokenize", {"content": text, "with_pieces": True})
        tokens = body.get("tokens") if isinstance(body, dict) else None
        if not isinstance(tokens, list):
            raise UpstreamError(f"the upstream {self.client.base_url} answered /tokenize "
                                f"without a token list")
        if all(isinstance(t, dict) for t in tokens):
            return [(t.get("id"), _piece(t.get("piece"))) for t in tokens]
        # older servers know no pieces: detokenize each id on its own
        return [(t, self.detokenize([t])) for t in tokens]

    def detokenize(self, tokens: Sequence[int]) -> str:
        body = self.client.post_json("/detokenize", {"tokens": list(tokens)})
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str):
            raise UpstreamError(f"the upstream {self.client.base_url} answered /detokenize "
                                f"without text")
        return content

    def embed(self, inputs: Sequence[str]) -> Embeddings:
        # One input at a time: llama-server (b1-0c1e570) returned a wrong vector for one of
        # two embeddings computed at once while a /tokenize ran beside them.
        results = [self._embed_one(text) for text in inputs]
        return Embeddings(tuple(vector for vector, _ in results),
                          sum(count for _, count in results))

    def _embed_one(self, text: str) -> tuple:
        body = self.client.post_json("/embedding", {"content": text})
        vector = self._vector(body)
        return vector, len(self.client.post_json("/tokenize", {"content": text})["tokens"])

    def _vector(self, body: object) -> list:
        """Read any generation's answer: a flat vector, or per-token vectors to mean-pool."""
        if isinstance(body, list) and body and isinstance(body[0], dict):
            body = body[0]  # current servers answer a list, one entry per prompt
        if isinstance(body, dict) and body.get("content") == "slot unavailable":
            raise UpstreamUnavailableError(f"the upstream {self.client.base_url} has no free "
                                           f"slot for the embedding; retry shortly", retry_after=1)
        vector = body.get("embedding") if isinstance(body, dict) else None
        if isinstance(vector, list) and vector and isinstance(vector[0], list):
            vector = _normalized(_mean(vector)) if len(vector) > 1 else vector[0]
        if not isinstance(vector, list) or not vector:
            raise UpstreamError(f"the upstream {self.client.base_url} answered /embedding "
                                f"without a vector")
        if not any(vector):
            # old servers started without --embedding answer zeros instead of an error
            raise NotImplementedByBackendError(
                f"the upstream {self.client.base_url} has embeddings off: start llama-server "
                f"with --embedding, or point --embedding-api at one that has them")
        return vector


def _piece(piece) -> str:
    if isinstance(piece, list):  # bytes of an incomplete UTF-8 character
        return bytes(piece).decode("utf-8", errors="replace")
    return piece if isinstance(piece, str) else ""


def _mean(vectors: list) -> list:
    return [sum(column) / len(vectors) for column in zip(*vectors)]


def _normalized(vector: list) -> list:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
