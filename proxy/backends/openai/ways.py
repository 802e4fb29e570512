"""The two ways a generation goes to an OpenAI-compatible upstream: a chat to its
``/chat/completions`` (:class:`ChatWay`), its answers read as llama-server's chat layer's
are (:mod:`proxy.backends.wire.chatparse`), and a raw prompt to its ``/completions``
(:class:`PromptWay`), its answers read as the legacy completions write them
(:mod:`.promptparse`). Either refuses by name what OpenAI's API has no place for
(:mod:`.payload`), and its route when the upstream is known to lack it (:mod:`.endpoints`).
Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterable, Iterator, Optional

from proxy.backends.openai import promptparse
from proxy.backends.openai.endpoints import PATHS
from proxy.backends.openai.payload import API, chat_body, passed_body, prompt_body, refusal, unsent
from proxy.backends.wire import chatparse
from proxy.backends.wire.way import Way
from proxy.core.answers import Completion
from proxy.core.errors import ProxyError
from proxy.core.types import GenerationRequest


@dataclass(frozen=True)
class OpenAIWay(Way):
    """What the ways of OpenAI's API share: what they refuse, and which fields have no
    place in it."""

    request: GenerationRequest
    label: str  # the upstream, as errors name it
    model: str  # the name the upstream knows the model by
    leave_out: Collection[str] = ()  # the fields the operator strips: left out, not refused
    lacking: Optional[ProxyError] = None  # the error of its route, known to be missing

    endpoint = ""  # its route, as the models file's ``endpoints`` names it

    def refusal(self) -> Optional[ProxyError]:
        return self.lacking or refusal(self.request, self.label, self.leave_out)

    def unsent(self) -> Iterable[str]:
        return (name for name, _ in unsent(self.request))


@dataclass(frozen=True)
class ChatWay(OpenAIWay):
    """A chat, to the chat route: a chat client's own body as it came (the fields the proxy
    reads and changed written anew), another API's translated."""

    endpoint = "chat"
    path = PATHS[endpoint]

    def body(self, *, stream: bool) -> dict:
        own = self.request.clients_own(API)
        if own is None:
            return chat_body(self.request, self.model, stream=stream)
        return passed_body(own, self.request, self.model, stream=stream)

    def whole(self, answer: object) -> Completion:
        return chatparse.completion(answer, self.label, self.request.logprobs)

    def chunks(self, lines: Iterable[list]) -> Iterator:
        asked = chatparse.wanted(self.request.unread)
        return chatparse.stream_chunks(lines, self.label, self.request.logprobs, asked)


@dataclass(frozen=True)
class PromptWay(OpenAIWay):
    """A raw prompt, to the legacy completions."""

    endpoint = "completions"
    path = PATHS[endpoint]

    def body(self, *, stream: bool) -> dict:
        return prompt_body(self.request, self.model, stream=stream)

    def whole(self, answer: object) -> Completion:
        return promptparse.completion(answer, self.label, self.request.logprobs)

    def chunks(self, lines: Iterable[list]) -> Iterator:
        return promptparse.stream_chunks(lines, self.label, self.request.logprobs)
