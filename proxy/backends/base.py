"""The one interface every backend implements: generate, count tokens, embed, say whether it
can serve and how loaded it is, close."""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

from proxy.core.answers import Chunk, Completion, Embeddings, Health, ModelInfo, Ranking
from proxy.core.audio import Speech, Transcript, Transcription, not_served
from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError
from proxy.core.pictures import Drawing, Pictures, not_drawn
from proxy.core.types import GenerationRequest


class Backend:
    """Generate text for the API layer.

    Implementations turn their own failures into :mod:`proxy.core.errors` exceptions, so the
    API layer never sees a socket's or a native library's exceptions. ``stream`` is a
    generator: closing it early (a client went away) must stop the generation.
    """

    name = "backend"
    concurrent = True  # whether generations may run at once (choices of n > 1 fan out)

    def complete(self, request: GenerationRequest) -> Completion:
        """Generate a whole answer for a chat (``request.messages``) or a raw prompt."""
        raise NotImplementedError

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        """Yield the answer piece by piece; the last chunk carries the finish reason."""
        raise NotImplementedError

    def models(self) -> list[ModelInfo]:
        """List the models this backend serves."""
        raise NotImplementedError

    def probe(self) -> Health:
        """Say whether the backend can serve requests now."""
        raise NotImplementedError

    def count_tokens(self, request: GenerationRequest) -> int:
        """How many tokens the prompt ``request`` would send takes, by the model's own
        tokenizer."""
        raise NotImplementedByBackendError(f"the {self.name} backend cannot count tokens")

    def tokenize(self, text: str, model: Optional[str] = None) -> list[tuple[int, str]]:
        """Return ``(id, piece)`` for each token of ``text`` (``model``: which, in a fleet)."""
        raise NotImplementedByBackendError(f"the {self.name} backend cannot tokenize")

    def token_count(self, text: str, model: Optional[str] = None) -> int:
        """How many tokens ``text`` is (no special token added)."""
        return len(self.tokenize(text, model))

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str:
        """Turn token ids back into text."""
        raise NotImplementedByBackendError(f"the {self.name} backend cannot detokenize")

    def transcribe(self, asked: Transcription, caller: Caller = NOBODY) -> Transcript:
        """The engine's answer to a transcription (or translation), in the format asked."""
        raise not_served(
            asked.model or self.name, "transcribe audio", f"the {self.name} backend has none"
        )

    def stream_transcript(self, asked: Transcription, caller: Caller = NOBODY) -> Iterator[bytes]:
        """The engine's streamed transcript (its events), its bytes as they come; the engine
        has been reached before this returns (a refusal is raised here)."""
        raise not_served(
            asked.model or self.name, "transcribe audio", f"the {self.name} backend has none"
        )

    def speak(self, asked: Speech, caller: Caller = NOBODY) -> Iterator[bytes]:
        """The engine's speech of a text, its bytes as they come; the engine has been
        reached before the first is asked for (a refusal is raised here)."""
        raise not_served(asked.model or self.name, "speak", f"the {self.name} backend has none")

    def draw(self, asked: Drawing, caller: Caller = NOBODY) -> Pictures:
        """The engine's pictures of a generation or an edit, as it wrote them."""
        raise not_drawn(asked.model or self.name, f"the {self.name} backend has none")

    def ask_native(self, path: str, body: Optional[dict] = None) -> tuple:
        """``(status, JSON)``: the model's server's own answer at ``path`` of llama.cpp's API
        (a GET where ``body`` is ``None``), for a route that is not a generation."""
        raise InvalidRequestError(
            f"{path} is llama.cpp's own API, served only for models on a llama.cpp or "
            f"PowerInfer server; this model is on the {self.name} backend",
            param="model",
        )

    def embed(
        self, inputs: Sequence[str], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> Embeddings:
        """Return one embedding vector per input text, waiting for slots as ``caller``."""
        raise NotImplementedByBackendError(
            f"the {self.name} backend has no embeddings; "
            f"use the servercpp backend with --embedding-api"
        )

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        model: Optional[str] = None,
        caller: Caller = NOBODY,
    ) -> Ranking:
        """Score each document's relevance to ``query``, waiting for a slot as ``caller``."""
        raise not_a_reranker(model or self.name)

    def load(self) -> tuple:
        """``(generations running or waiting, how many can run at once or None)``: what the
        fleet weighs in placing a request among replicas."""
        return 0, None

    def describe(self) -> dict:
        """Its queue and server as known now, without asking anything (for status pages)."""
        return {}

    def finds_slots(self) -> bool:
        """Whether the server itself sends a conversation to the slot holding its cache, so a
        slot the proxy names (from what it last saw) could only be out of date."""
        return False

    def close(self) -> None:
        """Release connections or native resources."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def not_a_reranker(model: str) -> InvalidRequestError:
    """The error of a rerank sent to a model that does not rerank."""
    return InvalidRequestError(
        f"the model '{model}' does not rerank: a llama-server started with --reranking does, "
        f"and an OpenAI-compatible upstream with /rerank",
        param="model",
    )
