"""What the API and the core ask of the one place every request goes, whatever model it names
(:class:`proxy.fleet.fleet.Fleet` is the one implementation). A generation's caller rides on
its request; the other calls are handed theirs (:mod:`proxy.core.caller`)."""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Protocol, Sequence

from proxy.core.answers import Completion, Embeddings, Health, ModelInfo, Ranking
from proxy.core.audio import Speech, Transcript, Transcription
from proxy.core.caller import NOBODY, Caller
from proxy.core.pictures import Drawing, Pictures
from proxy.core.target import Target
from proxy.core.types import GenerationRequest


class ServerControl(Protocol):
    """What the admin API and Ollama's load and unload ask of a server the proxy runs."""

    def ensure(self) -> None:
        """Return once the server is ready, starting it if need be."""

    def stop(self, why: str = "") -> None:
        """Stop the server (its conversations' caches saved first, when it keeps them)."""

    def keep_for(self, seconds: float) -> None:
        """Stop it once idle for ``seconds`` (negative: never)."""

    def snapshot(self) -> dict:
        """Its state as the status pages show it."""

    def log_tail(self, lines: int) -> str:
        """The last ``lines`` of its output."""


class ModelPulls(Protocol):
    """What Ollama's pull and delete ask of the proxy: models downloaded from a hub by name,
    served from then on, and deleted again."""

    def check(self, name: str) -> None:
        """A 400 naming ``model`` unless ``name`` is a model a client may pull."""

    def pull(self, name: str, progress: Callable[[str, str, int, int], None]) -> str:
        """Download the model ``name`` names and serve it; its id. ``progress`` hears each file's
        name, SHA-256, bytes so far and bytes in all as they come."""

    def delete(self, name: str) -> None:
        """Serve the pulled model ``name`` no more, and delete its files."""


class Generator(Protocol):
    """What answers a request's generations (:mod:`proxy.core.generation`): the fleet, or the
    tool loop around it."""

    concurrent: bool  # whether generations may run at once (choices of n > 1 fan out)

    def complete(self, request: GenerationRequest) -> Completion:
        """A whole answer for a chat or a raw prompt, naming who made it (``served``)."""

    def stream(self, request: GenerationRequest) -> Iterator:
        """The answer piece by piece: chunks, after the :class:`~proxy.core.answers.Served`
        that names who makes them, and the events the core passes on as they are (the
        upstream's own lines, hosted tools' runs, waiting); closing the stream stops the
        generation."""

    def starting(self, target: Target) -> bool:
        """Whether a request for ``target`` would first wait for its server to start."""


class Router(Generator, Protocol):
    """Routes each request to a model's backend and answers for the whole fleet."""

    def count_tokens(self, request: GenerationRequest) -> int:
        """The tokens of the prompt ``request`` would send, by the model's own tokenizer."""

    def tokenize(self, text: str, model: Optional[str] = None, caller: Caller = NOBODY) -> list:
        """``(id, piece)`` for each token of ``text``."""

    def token_count(self, text: str, model: Optional[str] = None, caller: Caller = NOBODY) -> int:
        """How many tokens ``text`` is to the model, no special token added: the pieces of
        :meth:`tokenize` cost an old server a request per character of the text."""

    def detokenize(
        self, tokens: Sequence[int], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> str:
        """Token ids back into text."""

    def transcribe(self, asked: Transcription, caller: Caller = NOBODY) -> Transcript:
        """The text of ``asked``'s audio from the model it names, as its engine wrote it."""

    def stream_transcript(self, asked: Transcription, caller: Caller = NOBODY) -> Iterator[bytes]:
        """The events of ``asked``'s streamed transcript from the model it names, as they
        come."""

    def speak(self, asked: Speech, caller: Caller = NOBODY) -> Iterator[bytes]:
        """The audio of ``asked``'s text from the model it names, as it comes."""

    def draw(self, asked: Drawing, caller: Caller = NOBODY) -> Pictures:
        """The pictures ``asked`` draws from the model it names, as its engine wrote them."""

    def ask_native(
        self, path: str, body: Optional[dict], model: Optional[str], caller: Caller = NOBODY
    ) -> tuple:
        """``(status, JSON)``: the model's server.cpp's own answer at ``path`` (a GET where
        ``body`` is ``None``); a model on another engine refuses by name."""

    def embed(
        self, inputs: Sequence[str], model: Optional[str] = None, caller: Caller = NOBODY
    ) -> Embeddings:
        """One vector per input text."""

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        model: Optional[str] = None,
        caller: Caller = NOBODY,
    ) -> Ranking:
        """How relevant each document is to ``query``, the most relevant first."""

    def models(self) -> list[ModelInfo]:
        """Every model served."""

    def resolve(self, model: Optional[str]) -> Target:
        """The model the name ``model`` names (the default when ``None``), looked up once:
        what every later step of its request reads of it."""

    def listed_id(self, target: Target) -> str:
        """The id ``target`` is listed under."""

    def prices(self) -> dict:
        """What each priced model's tokens cost: a price (its ``of(prompt, completion)``
        in US dollars) by the id usage counts the model under."""

    def held_price(self, target: Target, body: object) -> object:
        """The price a request for ``target`` whose client sent ``body`` holds its key's
        budgets at (the fields of the body that change what its upstream charges read);
        ``None`` for a model without a price."""

    def longest_answer(self, target: Target) -> Optional[int]:
        """The most tokens of answer a request for ``target`` that sets no ``max_tokens`` is
        given (what a budget holds for it); ``None`` while that is not known."""

    def local_models(self) -> frozenset:
        """The ids (as usage counts them) of the models served by llama.cpp's servers and
        chatglm.cpp: what a ``local_only`` key may use."""

    def check(self) -> Health:
        """Whether the fleet can serve now, every replica asked (one that serves goes back
        into rotation)."""

    def status(self, checked: bool = False) -> list:
        """Every model and replica as the status pages show them."""

    def server_of(self, name: str) -> ServerControl:
        """The server the proxy runs for model ``name``; an ``InvalidRequestError`` when
        someone else runs it."""

    def close(self) -> None:
        """Release every backend."""
