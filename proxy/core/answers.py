"""An answer as it travels back from the backends through the core to the dialects (no Flask, no
HTTP): whole completions and stream chunks, who served them and what they spent, their usage,
and the model cards, rankings and health the other routes give."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from proxy.core.types import ToolCall


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: Optional[int] = None  # prompt tokens the server took from its KV cache
    reasoning_tokens: Optional[int] = None  # completion tokens spent on thoughts, when known
    # the server's time on the prompt and on the answer's tokens, when it says: measures,
    # not part of what a usage is (two answers of the same counts use the same)
    prompt_ms: Optional[float] = field(default=None, compare=False)
    eval_ms: Optional[float] = field(default=None, compare=False)
    web_searches: int = 0  # searches the upstream ran itself (a server tool), priced per use
    audio_prompt_tokens: int = 0  # of the prompt's tokens, those of audio, priced apart
    stored: int = 0  # completions the upstream stores (asked with ``store``), priced per one
    # where the counts come from: the engine TOLD them; it told none (UNTOLD, until they
    # are had another way); or the proxy COUNTED them with the engine, or ESTIMATED them
    how: str = field(default="told", compare=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            _sum(self.cached_tokens, other.cached_tokens),
            _sum(self.reasoning_tokens, other.reasoning_tokens),
            _sum(self.prompt_ms, other.prompt_ms),
            _sum(self.eval_ms, other.eval_ms),
            web_searches=self.web_searches + other.web_searches,
            audio_prompt_tokens=self.audio_prompt_tokens + other.audio_prompt_tokens,
            stored=self.stored + other.stored,
            how=max(self.how, other.how, key=HOWS.index),  # a sum is as sure as its least
        )


TOLD, COUNTED, ESTIMATED, UNTOLD = HOWS = ("told", "counted", "estimated", "untold")


def told_tokens(answer: bytes, of_type: Optional[str] = None) -> Optional[Usage]:
    """The tokens an answer's JSON ``usage`` tells as OpenAI's media routes write it
    (``input_tokens``, ``output_tokens``, and the input's ``cached_tokens``), where its
    ``type`` is ``of_type`` (``None``: whatever it says); ``None`` where it tells none."""
    try:
        usage = json.loads(answer).get("usage")
    except (ValueError, AttributeError):
        return None
    if not isinstance(usage, dict) or of_type is not None and usage.get("type") != of_type:
        return None
    prompt, output = usage.get("input_tokens"), usage.get("output_tokens")
    if not all(type(n) is int and n >= 0 for n in (prompt, output)):
        return None
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(prompt, output, cached if type(cached) is int and 0 <= cached <= prompt else None)


def _sum(first: Optional[int], second: Optional[int]) -> Optional[int]:
    """Two counts that may be unknown: unknown only when both are."""
    return None if first is None and second is None else (first or 0) + (second or 0)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log probability and the best alternatives."""

    token: str
    logprob: float
    bytes: Optional[tuple] = None
    top: tuple = ()  # ((token, logprob, bytes), ...)


@dataclass(frozen=True)
class ToolCallPiece:
    """Spent of a streamed tool call: the ``index``-th call of its answer begins (with its
    ``id`` and ``name``) or goes on (more of its ``arguments``, as JSON text)."""

    index: int
    arguments: str = ""
    id: Optional[str] = None
    name: Optional[str] = None

    @classmethod
    def whole(cls, index: int, call: ToolCall) -> "ToolCallPiece":
        return cls(index, call.arguments, call.id, call.name)


def pieces(calls) -> tuple:
    """Whole calls as the pieces of a stream, one each."""
    return tuple(ToolCallPiece.whole(index, call) for index, call in enumerate(calls))


def assembled(pieces) -> tuple:
    """The whole calls that ``pieces`` of a stream make up, in order."""
    calls: dict = {}
    for piece in pieces:
        if piece.name is not None:
            calls[piece.index] = [piece.id or "", piece.name, [piece.arguments]]
        elif piece.index in calls:
            calls[piece.index][2].append(piece.arguments)
    return tuple(ToolCall(id, name, "".join(arguments)) for id, name, arguments in calls.values())


@dataclass(frozen=True)
class Served:
    """Who answered a choice or a turn, and what became of its request on the way: the id
    of the model that made it (as usage and prices count it), whether that is another than
    the one asked for (a fallback, an overflow, a warm equal), the request's fields the
    model's filters stripped (``stripped``) or sent with the operator's values
    (``replaced``), and the service tier it was asked at, priced apart by its model (``""``:
    its model's own).

    A whole answer carries it (:attr:`Completion.served`); a stream tells it before its
    first chunk, as an item of its own, which the core passes on as an event."""

    model: str = ""
    instead: bool = False
    stripped: tuple = ()
    replaced: tuple = ()
    tier: str = ""


@dataclass(frozen=True)
class Spent:
    """What one part of an answer that several models may have made (a turn of the tool
    loop) spent, and who ``served`` it (``None`` in a stream: the model that served last),
    charged to that model as the part ends. An answer made in parts is charged its parts,
    not its usage, which is still their sum for the client.

    A whole answer carries them (:attr:`Completion.spent`); a stream tells each as an item of
    its own, as its part ends."""

    usage: Usage
    served: Optional[Served] = None


@dataclass(frozen=True)
class Completion:
    """A whole generation."""

    text: str
    finish_reason: str
    usage: Usage
    logprobs: tuple = ()
    prompt_token_ids: Optional[tuple] = None  # when the client asked with ``tokenize``
    truncated: bool = False
    tool_calls: tuple = ()
    slot: Optional[int] = None  # the upstream slot that generated it, when it says
    reasoning: str = ""  # what the model wrote before its answer (``<think>…</think>``)
    stop_sequence: Optional[str] = None  # the stop word that ended it, when one did
    # the upstream's own answer, to a request sent on verbatim in the client's API
    verbatim: Optional[Mapping[str, Any]] = None
    # what the gateway ran of hosted tools before this answer (ToolListing, ToolRun)
    runs: tuple = ()
    served: Optional[Served] = None  # who answered it, told by the fleet
    spent: tuple = ()  # what each of its parts spent, where it was made in parts
    # the engine's own fields of its answer (llama-server's ``timings``, a fingerprint)
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed generation; the last one has ``finish_reason`` and ``usage``.

    A stream holds other items beside its chunks, which the core passes on as events as they
    are: who answered (:class:`Served`), the upstream's own lines
    (:class:`~proxy.core.events.Passed`), hosted tools' listings and runs, and waiting."""

    text: str = ""
    logprobs: tuple = ()
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    prompt_token_ids: Optional[tuple] = None
    truncated: bool = False
    tool_calls: tuple = ()  # ToolCallPiece values
    slot: Optional[int] = None
    # the next chunk arrived with this one: a writer may send both at once, saving a write
    followed: bool = False
    reasoning: str = (
        ""  # thoughts, told apart from ``text`` (see proxy.backends.structured.reasoning)
    )
    stop_sequence: Optional[str] = None  # on the last chunk: the stop word that ended it
    prompt_count: Optional[int] = None  # on the first chunk: prompt tokens, when known early
    # the engine's own fields told with this piece (llama-server's ``timings``,
    # ``prompt_progress``), passed on where the client's API has room
    extras: Optional[Mapping[str, Any]] = None

    @classmethod
    def partial(cls, text: str, logprobs: tuple, followed: bool) -> "Chunk":
        """A chunk of text within a stream, made once per token: a frozen dataclass sets
        each of its fields through ``object.__setattr__``; this sets three, and the class's
        defaults stand for the rest."""
        chunk = object.__new__(cls)
        chunk.__dict__.update(text=text, logprobs=logprobs, followed=followed)
        return chunk


@dataclass(frozen=True)
class Embeddings:
    """One vector per input, and how many tokens the inputs took."""

    vectors: tuple
    prompt_tokens: int

    def unit(self, dimensions: Optional[int] = None) -> "Embeddings":
        """Each vector cut to its first ``dimensions`` (all, where ``None``) and scaled to
        unit length: what a client asking for fewer dimensions gets (OpenAI's and Ollama's
        ``dimensions``), as a model trained for them is cut."""
        return Embeddings(
            tuple(_unit(vector[:dimensions] if dimensions else vector) for vector in self.vectors),
            self.prompt_tokens,
        )


def _unit(vector) -> tuple:
    norm = math.sqrt(sum(x * x for x in vector))
    return tuple(x / norm for x in vector) if norm else tuple(vector)


@dataclass(frozen=True)
class Ranking:
    """How relevant a reranker finds each document to a query: ``(index, score)`` pairs, the
    most relevant first, and how many tokens the query and documents took."""

    scores: tuple
    prompt_tokens: int = 0


@dataclass(frozen=True)
class ModelCard:
    """What a model is and can do, as far as its server or file tells: for clients that ask
    (Ollama's ``/api/show``, ``/api/tags``) before they pick a model."""

    # of completion, tools, thinking, vision, audio, rerank, transcription, speech
    capabilities: tuple = ("completion",)
    context_length: Optional[int] = None  # tokens the server gives a conversation
    architecture: str = ""  # GGUF's general.architecture
    parameters: Optional[int] = None
    quantization: str = ""  # e.g. Q4_K_M
    size: Optional[int] = None  # bytes of the model file
    digest: str = ""  # a stable hash naming this model file (or the server's model)
    modified: Optional[float] = None  # the file's modification time (seconds since 1970)
    template: str = ""  # its chat template's source, when known


@dataclass(frozen=True)
class ModelInfo:
    id: str
    owned_by: str = "oai-proxy"
    meta: dict = field(default_factory=dict)
    card: ModelCard = field(default_factory=ModelCard)


@dataclass(frozen=True)
class Health:
    """Whether the backend can serve now, and what it is."""

    ok: bool
    backend: str
    detail: dict[str, Any] = field(default_factory=dict)
