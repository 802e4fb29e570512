"""The server's other endpoints: tokens, embeddings, their pieces, and reranking.

Tokens, embeddings and their pieces from a server.cpp, in the shape of whichever kind answers.

A byte-fallback token (the first byte of a character outside the vocabulary: Chinese text, an
emoji) is no text on its own. Pieces are reported whole instead: the character goes to the first
of its tokens and the others get ``""``, so the pieces always join to the text.

Reranking on a llama-server started with ``--reranking``: ``POST /v1/rerank``, its body and
answer as every reranking server's (:mod:`proxy.backends.wire.ranking`).
"""

from __future__ import annotations

import codecs
from itertools import pairwise
from typing import Iterable, Optional, Sequence

from proxy.backends.wire.client import UpstreamClient
from proxy.core.answers import Embeddings
from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import (
    InvalidRequestError,
    NotImplementedByBackendError,
    SlotUnavailableError,
    UpstreamError,
)
from proxy.queue.admission import Admission


class TokenClient:
    """``/tokenize``, ``/detokenize`` and ``/embedding`` on one server.cpp.

    Old servers cannot write a piece of a character into JSON (a ``/detokenize`` of one
    byte-fallback token answers 500), so nothing here ever asks them to.
    """

    def __init__(self, client: UpstreamClient, admission: Optional[Admission] = None) -> None:
        self.client = client
        self.admission = admission

    def token_ids(self, text: str, *, add_special: bool = False) -> list:
        """The ids of ``text``'s tokens, as the server counts them (``add_special``: with the
        BOS the server puts before a prompt, where the model has one)."""
        return [
            token["id"] if isinstance(token, dict) else token
            for token in self._tokens(text, with_pieces=False, add_special=add_special)
        ]

    def count(self, prompt: str, *, legacy: bool) -> int:
        """The tokens ``prompt`` takes as a prompt, its BOS included: current servers add it
        when asked (``add_special``), old ones add it to every prompt they are sent."""
        tokens = self._tokens(prompt, with_pieces=False, add_special=True)
        return len(tokens) + (1 if legacy else 0)

    def tokenize(self, text: str) -> list:
        """``(id, piece)`` pairs whose pieces join to the text (see :mod:`.pieces`)."""
        tokens = self._tokens(text, with_pieces=True)
        if all(isinstance(t, dict) for t in tokens):
            return whole_pieces((t.get("id"), server_piece(t.get("piece"))) for t in tokens)
        return self._aligned_pieces(text, tokens)

    def _aligned_pieces(self, text: str, ids: list) -> list:
        """Pieces from a server without them: detokenize only runs that end on a character.

        A prefix of the text whose tokens begin the text's tokens ends on a character
        boundary in both; each run of tokens between two such boundaries is whole text.
        """
        ends = [0]
        for end in range(1, len(text)):
            prefix = self.token_ids(text[:end])
            if len(prefix) > ends[-1] and ids[: len(prefix)] == prefix:
                ends.append(len(prefix))
        if ends[-1] < len(ids):
            ends.append(len(ids))
        pieces = []
        for start, stop in pairwise(ends):
            pieces.append(self.detokenize(ids[start:stop]))
            pieces.extend([""] * (stop - start - 1))
        return list(zip(ids, pieces, strict=True))

    def _tokens(self, text: str, *, with_pieces: bool, add_special: bool = False) -> list:
        body = self.client.post_json(
            "/tokenize", {"content": text, "with_pieces": with_pieces, "add_special": add_special}
        )
        tokens = body.get("tokens") if isinstance(body, dict) else None
        if not isinstance(tokens, list):
            raise UpstreamError(f"{self.client.label} answered /tokenize without a token list")
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        body = self.client.post_json("/detokenize", {"tokens": list(tokens)})
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str):
            raise UpstreamError(f"{self.client.label} answered /detokenize without text")
        return content

    def embed(self, inputs: Sequence[str], caller: Caller = NOBODY) -> Embeddings:
        # One input at a time: llama-server (b1-0c1e570) returned a wrong vector for one of
        # two embeddings computed at once while a /tokenize ran beside them.
        results = [self._embed_one(text, caller) for text in inputs]
        return Embeddings(
            tuple(vector for vector, _ in results), sum(count for _, count in results)
        )

    def _embed_one(self, text: str, caller: Caller) -> tuple:
        def embedding() -> object:
            body = self.client.post_json("/embedding", {"content": text}, caller=caller)
            return self._vector(body)

        vector = self.admission.run(embedding, caller) if self.admission else embedding()
        # the tokens the server embedded: the text's and the marks its model puts around it
        return vector, len(self.token_ids(text, add_special=True))

    def _vector(self, body: object) -> list:
        """Read any kind's answer: a flat vector, or per-token vectors to mean-pool."""
        if isinstance(body, list) and body and isinstance(body[0], dict):
            body = body[0]  # current servers answer a list, one entry per prompt
        if isinstance(body, dict) and body.get("content") == "slot unavailable":
            raise SlotUnavailableError(
                f"{self.client.label} has no free slot for the embedding; retry shortly",
                retry_after=1,
            )
        vector = body.get("embedding") if isinstance(body, dict) else None
        if isinstance(vector, list) and vector and isinstance(vector[0], list):
            if len(vector) > 1:  # as llama-server's own /v1/embeddings refuses it
                raise InvalidRequestError(
                    "the model's server gives a vector per token (--pooling none), which "
                    "embeddings have no place for; start it with --pooling mean, cls or last",
                    param="input",
                )
            vector = vector[0]
        if not isinstance(vector, list) or not vector:
            raise UpstreamError(f"{self.client.label} answered /embedding without a vector")
        if not any(vector):
            # old servers started without --embedding answer zeros instead of an error
            raise NotImplementedByBackendError(
                f"{self.client.label} has embeddings off: start llama-server "
                f"with --embedding, or point --embedding-api at one that has them"
            )
        return vector


def whole_pieces(tokens: Iterable[tuple[int, bytes]]) -> list:
    """``(id, text)`` for each ``(id, bytes)``; an unfinished last character becomes U+FFFD."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pieces: list = []
    start, text = 0, ""
    for token, data in tokens:
        if not decoder.getstate()[0]:
            start, text = len(pieces), ""
        text += decoder.decode(data)
        pieces.append([token, ""])
        pieces[start][1] = text
    if decoder.getstate()[0]:
        pieces[start][1] = text + decoder.decode(b"", final=True)
    return [tuple(piece) for piece in pieces]


def server_piece(piece: object) -> bytes:
    """A piece as current llama-server sends it: text, or a list of byte values."""
    if isinstance(piece, str):
        return piece.encode("utf-8", "replace")
    if isinstance(piece, list) and all(isinstance(b, int) and 0 <= b < 256 for b in piece):
        return bytes(piece)
    return b""


PATH = "/v1/rerank"
PROBE_PATH = "/rerank"  # older servers know only this one
PROBE = {}  # a reranker asks for its query (400), any other server says it does not rerank
