"""The two ways a request goes to a Messages API server: a chat of any client's API translated
into the Messages API's body (:class:`TranslatedWay`), or, when the client spoke the Messages
API itself, its own body sent on verbatim, and the server's answer passed back as it wrote
it (:class:`VerbatimWay`). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Iterable, Iterator, Mapping, Optional

from proxy.backends.anthropic import reply
from proxy.backends.anthropic.payload import (
    COUNT_PATH,
    PATH,
    filled,
    messages_body,
    refusal,
    unsent,
)
from proxy.backends.wire.way import Way
from proxy.core.answers import Completion
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest, amended


@dataclass(frozen=True)
class TranslatedWay(Way):
    """A chat written as the Messages API's body, its answer read back; what the API has no
    field for is refused by name, and so is a raw prompt."""

    request: GenerationRequest
    label: str  # the server, as errors name it
    model: str  # the name the server knows the model by
    leave_out: Collection[str] = ()  # the fields the operator strips: left out, not refused

    path = PATH

    def refusal(self) -> Optional[InvalidRequestError]:
        return refusal(self.request, self.label, self.leave_out)

    def unsent(self) -> Iterable[str]:
        return unsent(self.request)

    def filled(self) -> tuple:
        return filled(self.request)

    def body(self, *, stream: bool) -> dict:
        return messages_body(self.request, self.model, stream=stream)

    def whole(self, answer: object) -> Completion:
        return reply.completion(answer, self.label)

    def chunks(self, lines: Iterable[list]) -> Iterator:
        return reply.stream_chunks(lines, self.label)


@dataclass(frozen=True)
class VerbatimWay(Way):
    """A Messages client's own body: nothing refused (the server judges it), every field the
    proxy does not read sent on as the client wrote it, only ``model`` and ``stream`` set;
    the answer passed back as the server wrote it, and read all the same (for usage,
    budgets, metrics and the inspector). Its prompt's tokens are the server's count."""

    own: Mapping[str, Any]  # the client's body
    label: str  # the server, as errors name it
    model: str  # the name the server knows the model by

    path = PATH
    count_path = COUNT_PATH

    def body(self, *, stream: bool) -> dict:
        return {**self.own, "model": self.model, "stream": stream}

    def whole(self, answer: object) -> Completion:
        return amended(reply.completion(answer, self.label), verbatim=answer)

    def chunks(self, lines: Iterable[list]) -> Iterator:
        return reply.verbatim_chunks(lines, self.label)

    def count_body(self) -> dict:
        return {**self.own, "model": self.model}

    def counted(self, answer: object) -> int:
        return reply.counted(answer, self.label)
