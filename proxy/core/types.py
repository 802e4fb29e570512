"""A request as it travels between the dialects, the core and the backends (no Flask, no HTTP):
plain values, and how one is amended. Its answer's values are :mod:`proxy.core.answers`."""

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
    order: int = 0  # its place among the message's images and sounds at the same ``at``

    @property
    def data_uri(self) -> str:
        return f"data:{self.media_type};base64,{self.data}"


@dataclass(frozen=True)
class Sound:
    """Audio a message holds: the request's field it came in, where in the message's text it
    stands (``at``), its format as its first bytes say (``wav``, ``mp3``…), its bytes in
    base64, and the most tokens an audio projector makes of it, as its length bounds them."""

    field: str
    at: int
    audio_format: str
    data: str
    order: int = 0  # its place among the message's images and sounds at the same ``at``
    tokens: Optional[int] = None  # the most a projector makes of it (None: not told)


@dataclass(frozen=True)
class Message:
    """One chat message with its content flattened to text, the images it shows
    (:class:`Image` values) and the audio it holds (:class:`Sound` values); an assistant's
    earlier calls (:class:`ToolCall` values) and thoughts, when the client sent them back."""

    role: str
    content: str
    name: Optional[str] = None
    tool_calls: tuple = ()
    tool_call_id: Optional[str] = None
    reasoning: str = ""
    images: tuple = ()
    sounds: tuple = ()


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

    @property
    def sounds(self) -> tuple:
        """Every sound the messages hold, in order."""
        return tuple(sound for message in self.messages for sound in message.sounds)

    def in_slot(self, slot: int) -> "GenerationRequest":
        """This request pinned to ``slot``."""
        return amended(self, slot=slot)

    def clients_own(self, api: str) -> Optional[Mapping[str, Any]]:
        """The client's own body, where it spoke ``api`` (``None``: another API): a server
        of that API takes it as it came."""
        verbatim = self.verbatim
        return verbatim.body if verbatim is not None and verbatim.api == api else None

    def served_for(self, caller: Caller) -> "GenerationRequest":
        """This request, served for ``caller``."""
        return amended(self, caller=caller)

    def in_conversation(self, name: Optional[str]) -> "GenerationRequest":
        """This request, placed as part of the conversation ``name`` (``None``: as its
        messages say)."""
        return amended(self, conversation=name)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text
