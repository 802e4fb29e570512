"""Plain values that travel between the dialects, the core and the backends (no Flask, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, TypeVar

from proxy.core.caller import NOBODY, Caller

V = TypeVar("V")


def amended(value: V, **changes) -> V:
    """``value`` (a frozen dataclass: the core's values, a dialect's ask) with ``changes``,
    as a shallow copy.

    Every request and many chunks are amended on their way; ``dataclasses.replace`` would
    run ``__init__`` and its default factories again, at three to six times the cost."""
    known = type(value).__dataclass_fields__  # a value's own dict may hold only some
    if not changes.keys() <= known.keys():
        unknown = ", ".join(sorted(changes.keys() - known.keys()))
        raise TypeError(f"{type(value).__name__} has no field {unknown}")
    copy = object.__new__(type(value))
    copy.__dict__.update(value.__dict__, **changes)
    return copy


@dataclass(frozen=True)
class Image:
    """An image a message shows: the request's field it came in (an error names it), where
    in the message's text it stands (``at``, a character offset), and its bytes in base64
    with their media type, or the ``url`` the proxy is yet to fetch."""

    field: str
    at: int = 0
    media_type: str = ""
    data: str = ""
    url: str = ""

    @property
    def data_uri(self) -> str:
        return f"data:{self.media_type};base64,{self.data}"


@dataclass(frozen=True)
class Message:
    """One chat message with its content flattened to text and the images it shows
    (:class:`Image` values); an assistant's earlier calls (:class:`ToolCall` values) and
    thoughts, when the client sent them back."""

    role: str
    content: str
    name: Optional[str] = None
    tool_calls: tuple = ()
    tool_call_id: Optional[str] = None
    reasoning: str = ""
    images: tuple = ()


@dataclass(frozen=True)
class Sampling:
    """Sampling options a client set; ``None`` means "leave the upstream's default"."""

    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    min_p: Optional[float] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    repeat_penalty: Optional[float] = None
    seed: Optional[int] = None
    mirostat: Optional[int] = None
    mirostat_tau: Optional[float] = None
    mirostat_eta: Optional[float] = None
    logit_bias: tuple = ()  # ((token_id, bias), ...); bias False bans the token


def function_tool(name: str, parameters: dict, description: Optional[str] = None) -> dict:
    """A tool as the proxy holds it, whatever API offered it: OpenAI's function shape, which
    chat templates read."""
    function = {"name": name, "description": description, "parameters": parameters}
    if not description:
        del function["description"]
    return {"type": "function", "function": function}


@dataclass(frozen=True)
class ResponseFormat:
    """A structured-output request: ``json_object`` or ``json_schema`` with its schema."""

    type: str
    schema: Optional[dict] = None


@dataclass(frozen=True)
class ToolChoice:
    """Whether the answer may, must, or must not call a tool (OpenAI ``tool_choice``)."""

    mode: str = "auto"  # auto | required | function (then ``name`` says which)
    name: Optional[str] = None

    @property
    def forced(self) -> bool:
        return self.mode != "auto"


@dataclass(frozen=True)
class SourceChunk:
    """Another source file's text a gap may draw on (llama.cpp's ``input_extra``)."""

    text: str
    filename: str = "tmp"


@dataclass(frozen=True)
class Verbatim:
    """A client's body as it came, in the public API it speaks (``anthropic``, ``chat``): a
    backend that speaks the same API sends it on as it is, keeping every field the proxy
    does not read (sealed thoughts, cache marks, server tools, an engine's extensions)."""

    api: str
    body: Mapping[str, Any]
    # why the body has no translation: what a model of another API answers instead
    untranslated: Optional[Exception] = None
    # the messages and tools the proxy read from it: a request that holds others (a later
    # turn of the tool loop, images fetched, the tools the gateway runs) sends its own
    messages: tuple = ()
    tools: tuple = ()


@dataclass(frozen=True)
class GenerationRequest:
    """What a backend needs to generate: chat ``messages`` or a raw ``prompt``."""

    model: Optional[str] = None
    messages: tuple = ()
    prompt: Optional[str] = None
    # fill-in-the-middle: the text after the gap (the prompt is the text before it), other
    # files' chunks it may draw on (SourceChunk), and what is typed of the gap's line so far
    suffix: Optional[str] = None
    nearby: tuple = ()
    cursor: str = ""
    max_tokens: Optional[int] = None
    stop: tuple = ()
    sampling: Sampling = field(default_factory=Sampling)
    logprobs: Optional[int] = None  # how many alternatives per token; None = no logprobs
    response_format: Optional[ResponseFormat] = None
    n_keep: Optional[int] = None
    cache_prompt: Optional[bool] = None
    slot: Optional[int] = None
    tokenize: bool = False
    tools: tuple = ()  # OpenAI tool definitions, as sent
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: Optional[bool] = None  # None: as the model's template allows
    grammar: Optional[str] = None  # GBNF the answer must match (server.cpp only)
    # variables for the model's chat template (``enable_thinking``, ``reasoning_effort``…)
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # names the conversation for placement when the client does (an agent's thread id)
    conversation: Optional[str] = None
    # the client's fields the proxy does not read (an engine's own extensions, fields newer
    # than the proxy), sent on as they came to a server that reads them, refused by name
    # where none would
    unread: Mapping[str, Any] = field(default_factory=dict)
    verbatim: Optional[Verbatim] = field(default=None, compare=False, repr=False)
    # the uses of the servers of tools the gateway runs for the model (ToolUse), and the
    # client's word on the calls it was asked to approve (Approval)
    uses: tuple = ()
    approvals: tuple = ()
    # who it is served for: its key's turn, its measure, whether its client is still there
    caller: Caller = field(default=NOBODY, compare=False, repr=False)

    @property
    def is_chat(self) -> bool:
        return self.prompt is None

    @property
    def images(self) -> tuple:
        """Every image the messages show, in order."""
        return tuple(image for message in self.messages for image in message.images)

    def in_slot(self, slot: int) -> "GenerationRequest":
        """This request pinned to ``slot``."""
        return amended(self, slot=slot)

    def served_for(self, caller: Caller) -> "GenerationRequest":
        """This request, served for ``caller``."""
        return amended(self, caller=caller)

    def in_conversation(self, name: Optional[str]) -> "GenerationRequest":
        """This request, placed as part of the conversation ``name`` (``None``: as its
        messages say)."""
        return amended(self, conversation=name)


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
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


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

    capabilities: tuple = ("completion",)  # of completion, tools, thinking, vision, rerank
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
