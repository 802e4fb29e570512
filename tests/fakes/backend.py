"""A scripted backend for API tests: no HTTP, no model, every call recorded."""

from __future__ import annotations

from typing import Iterator, Optional

from proxy.backends.base import Backend
from proxy.core.answers import Chunk, Completion, Embeddings, Health, ModelInfo, Ranking, Usage
from proxy.core.types import GenerationRequest


def rendered(request: GenerationRequest) -> str:
    """The fake's prompt: each message on a line of its own, ``role: content``."""
    if not request.is_chat:
        return request.prompt
    return "".join(f"{message.role}: {message.content}\n" for message in request.messages)


def shown(request: GenerationRequest) -> None:
    """Tell the inspector what the fake sent "upstream" and the prompt it rendered."""
    side = request.caller.side
    if side is not None:
        side.sent("/fake", {"prompt": rendered(request)})
        side.prompted(rendered(request))


class FakeBackend(Backend):
    """Answers every request with ``pieces`` joined; raises ``error`` when it is set.

    ``fail_after`` makes a stream raise ``error`` after that many pieces, to test errors
    that happen once the response has started.
    """

    name = "fake"

    def __init__(
        self,
        pieces=("Hello", " world"),
        *,
        finish_reason: str = "stop",
        usage: Usage = Usage(5, 2),
        error: Optional[Exception] = None,
        fail_after: Optional[int] = None,
        model: str = "fake-model",
    ) -> None:
        self.pieces = tuple(pieces)
        self.finish_reason = finish_reason
        self.usage = usage
        self.error = error
        self.fail_after = fail_after
        self.model = model
        self.requests: list[GenerationRequest] = []
        self.closed_streams = 0
        self.finished_streams = 0

    def starting(self, model: Optional[str] = None) -> bool:
        return False

    def complete(self, request: GenerationRequest) -> Completion:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        shown(request)
        if request.caller.side is not None:
            request.caller.side.wrote("".join(self.pieces))
        return Completion(
            "".join(self.pieces),
            self.finish_reason,
            self.usage,
            prompt_token_ids=(1, 2, 3) if request.tokenize else None,
        )

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        self.requests.append(request)
        if self.error is not None and self.fail_after is None:
            raise self.error
        finished = False
        shown(request)
        try:
            for count, piece in enumerate(self.pieces):
                if self.fail_after is not None and count == self.fail_after:
                    raise self.error
                if request.caller.side is not None:
                    request.caller.side.wrote(piece)
                yield Chunk(text=piece)
            finished = True
            yield Chunk(finish_reason=self.finish_reason, usage=self.usage)
        finally:
            if not finished:
                self.closed_streams += 1
            else:
                self.finished_streams += 1

    def models(self) -> list:
        return [ModelInfo(self.model)]

    def count_tokens(self, request: GenerationRequest) -> int:
        """One token per character of the messages (or the prompt)."""
        self.counted = request
        if request.is_chat:
            return sum(len(message.content) for message in request.messages)
        return len(request.prompt)

    def tokenize(self, text: str, model: Optional[str] = None) -> list:
        """One token per character, its id the code point."""
        return [(ord(char), char) for char in text]

    def detokenize(self, tokens, model=None) -> str:
        """The code point of each id; an id that is no character's stands for "?"."""
        return "".join(chr(t) if t < 0x110000 and not 0xD800 <= t < 0xE000 else "?" for t in tokens)

    def embed(self, inputs, model=None, caller=None) -> Embeddings:
        """A vector per input that tells inputs apart: [length, first code point, 0.5]."""
        if self.error is not None:
            raise self.error
        self.embedded = list(inputs)
        return Embeddings(
            tuple([float(len(t)), float(ord(t[0])), 0.5] for t in inputs),
            sum(len(t) for t in inputs),
        )

    def rerank(self, query, documents, model=None, caller=None) -> Ranking:
        """Each document scored by the words it shares with the query."""
        if self.error is not None:
            raise self.error
        words = set(query.split())
        scores = [(i, float(len(words & set(d.split())))) for i, d in enumerate(documents)]
        return Ranking(
            tuple(sorted(scores, key=lambda pair: -pair[1])),
            sum(len(d) + len(query) for d in documents),
        )

    def probe(self) -> Health:
        return Health(self.error is None, self.name, {})
