"""The models a proxy serves: each with its id, aliases, backend, upstreams, template and
defaults, found by the name a request gives, its defaults filled into the requests it
serves; the models pulled from a hub beside them; and the MCP servers whose tools the
gateway runs. Pure: no network, no processes.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Collection, Optional

from proxy.config.hubref import HubReference
from proxy.config.price import PRICED_FIELDS, Price, terms
from proxy.core.tooluse import TOOL_TURNS
from proxy.core.types import GenerationRequest, Sampling, amended

LOCAL_BACKENDS = frozenset({"servercpp", "chatglm"})  # what a key's local_only allows
# The routes of OpenAI's API an upstream of ``backend = "openai"`` may serve, as the models file
# names them (``endpoints``): chats, raw prompts (the legacy completions), embeddings, reranking.
ENDPOINTS = (
    "chat",
    "completions",
    "embeddings",
    "rerank",
    "responses",
    "transcriptions",
    "translations",
    "speech",
    "image_generations",
    "image_edits",
)


class CatalogError(ValueError):
    """The models file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class UpstreamSpec:
    """One replica: a server's base URL (a server.cpp's, or an OpenAI-compatible ``…/v1``),
    and its slot count when the operator fixes it (for an OpenAI-compatible upstream: how
    many generations it is given at once)."""

    url: str
    slots: int = 0  # 0: as the server reports, or as its answers show


@dataclass(frozen=True)
class Timeouts:
    """Seconds a model's upstream is given, in place of the proxy's flags where set
    (``None``: ``--connect-timeout``, ``--upstream-timeout``; no first-byte bound)."""

    connect: Optional[float] = None  # to open a connection
    read: Optional[float] = None  # for each next bytes of an answer
    first_byte: Optional[float] = None  # for a streamed answer's first bytes


@dataclass(frozen=True)
class Filters:
    """What the body sent to a model's upstream has, whatever the request asked: fields left
    out (``strip``) and fields put in with the operator's values (``set``), named by the
    upstream's API."""

    strip: tuple = ()  # field names
    set: tuple = ()  # (field name, value) pairs

    def __bool__(self) -> bool:
        return bool(self.strip or self.set)

    def apply(self, body: dict, filled: Collection[str] = ()) -> tuple:
        """Apply them to ``body``, in place: it is the one the relay wrote for this request
        alone, and goes upstream as they leave it (a value set is a copy, the body's own).
        Returns ``(stripped, replaced)``: the names of the fields the request had given that
        are stripped, and that go with the operator's values instead, for the answer to name
        (``filled``: fields of the body the proxy wrote though the request gave none, such
        as a limit the API requires)."""
        stripped = tuple(name for name in self.strip if name in body and name not in filled)
        for name in self.strip:
            body.pop(name, None)
        replaced = tuple(name for name, _ in self.set if name in body and name not in filled)
        body.update((name, copy.deepcopy(value)) for name, value in self.set)
        return stripped, replaced


@dataclass(frozen=True)
class ManagedSpec:
    """A server the proxy starts itself: a command with ``${PORT}`` and ``${MODEL}`` in it
    (``None``: llama-server with ``args``), and when to start and stop it."""

    command: Optional[tuple] = None
    model: str = ""
    args: tuple = ()
    ttl: float = 0.0  # seconds idle before it stops; 0 = never
    preload: bool = False
    slot_save: str = "on-stop"  # when it saves its conversations' KV caches (see SLOT_SAVES)
    source: str = ""  # the hub reference its model file was downloaded for (hf:org/repo:TAG)

    @property
    def capabilities(self) -> tuple:
        """What its server's flags let it do, before the server is asked (every chat model
        calls tools, through its server's chat layer or the proxy's own way)."""
        if {"--reranking", "--rerank"} & set(self.args):
            return ("rerank",)
        return ("completion", "tools") + (
            ("vision",) if {"--mmproj", "-mm"} & set(self.args) else ()
        )


@dataclass(frozen=True)
class ModelSpec:
    """One model the proxy serves. An empty ``id`` means "whatever the upstream calls it"."""

    id: str
    aliases: tuple = ()
    backend: str = "servercpp"
    upstreams: tuple = ()  # UpstreamSpec, one per replica of the same model
    embedding_upstream: Optional[UpstreamSpec] = None
    chat_template: str = "auto"
    path: str = ""  # chatglm: the model file
    defaults: Optional[GenerationRequest] = None  # request fields the client may leave out
    affinity: bool = True
    upstream_key: str = field(default="", repr=False)
    upstream_key_env: str = ""  # the environment variable that holds the upstream's key
    upstream_model: str = ""  # openai, anthropic: the name the upstream knows the model by
    endpoints: tuple = ()  # openai: the ENDPOINTS its upstream serves; () = not said, learned
    managed: Optional[ManagedSpec] = None
    reasoning: str = "auto"  # think-tags, none, or auto: think-tags if its template has them
    pulled: bool = False  # pulled through Ollama's API, not configured: a client may delete it
    stem: str = ""  # what its server's log file and slot folder are named, when not its id
    capture: bool = False  # its exchanges are kept for the inspector
    fallbacks: tuple = ()  # ids of the models that answer, in turn, when none of its replicas can
    context_fallbacks: tuple = ()  # ids of those that answer, in turn, a prompt too long for it
    overflow: str = ""  # id of the model a request goes to while every replica is full
    overflow_after: int = 0  # requests waiting for a slot of every replica before it overflows
    warm: tuple = ()  # ids of equal models, the first of them running answers while it is not
    drop_hosted_tools: bool = False  # hosted tools it does not run are left out, not refused
    tools: tuple = ()  # servers of tools the gateway runs for it (MCP servers' names, "web")
    max_tool_turns: int = TOOL_TURNS  # the model's turns in one request's tool loop, at the most
    price: Optional[Price] = None  # what its tokens cost; None: nothing counted
    # openai, anthropic: sent with every request to its upstream, as (name, value) pairs;
    # headers_env's values are read from the environment variables they name
    headers: tuple = field(default=(), repr=False)
    headers_env: tuple = ()
    timeouts: Timeouts = Timeouts()
    filters: Filters = Filters()

    @property
    def names(self) -> tuple:
        return ((self.id,) if self.id else ()) + self.aliases

    def held_price(self, body: object) -> Optional[Price]:
        """The price a request whose client sent ``body`` holds its key's budgets at: the
        model's, at the service tier the body asks of a server of OpenAI's API, as the
        model's filters leave it (``None``: it has no price)."""
        if self.price is None or self.backend != "openai" or type(body) is not dict:
            return self.price
        stripped = self.filters.strip
        sent = {name: body[name] for name in PRICED_FIELDS if name in body and name not in stripped}
        sent.update((name, value) for name, value in self.filters.set if name in PRICED_FIELDS)
        return self.price.held(terms(sent))

    @property
    def file_stem(self) -> str:
        """The name its server's files take (an id from the models file is checked to be
        one, see :func:`id_problem`; a pulled model's, ``hf.co/org/repo:TAG``, is not)."""
        return self.stem or self.id


MIB = 1024 * 1024
WEB = "web"  # the web search, as a model's tools name it; no MCP server may take the name


@dataclass(frozen=True)
class McpServerSpec:
    """An MCP server the operator declares (``[mcp_servers.NAME]``): a command the gateway
    runs and speaks to on its standard input and output, or a URL it reaches over
    streamable HTTP; and the bounds of every call made to it. A credential is never held
    here: ``headers_env`` names the environment variables the headers' values are read
    from when the gateway connects."""

    name: str
    command: tuple = ()  # stdio: the program and its arguments
    env: tuple = field(default=(), repr=False)  # stdio: (name, value) pairs set for it
    cwd: str = ""  # stdio: the folder it runs in; empty: the proxy's
    url: str = field(default="", repr=False)  # streamable HTTP: the server's endpoint
    headers_env: tuple = ()  # streamable HTTP: (header, environment variable) pairs
    call_timeout: float = 60.0  # seconds a call may take once its server is up
    start_timeout: float = 30.0  # seconds its server may take to start and shake hands
    max_output_bytes: int = MIB  # bytes of a result's text kept; the rest is cut as it is read
    idle_stop: float = 600.0  # seconds unused before its process stops (0 = never)
    shared: bool = False  # one session for every key (else one per key)
    max_sessions: int = 16  # sessions of different keys at once, the least recently used stopped

    @property
    def stdio(self) -> bool:
        return bool(self.command)


@dataclass(frozen=True)
class WebSearchSpec:
    """The web search and fetch the gateway runs for a model (``[web_search]``): the
    SearXNG instance it searches through (the operator's, trusted: its JSON API at
    ``<searxng>/search``), and the bounds of every call. ``fetch`` says where ``web_fetch``
    may go: ``public`` addresses only, ``any`` (the LAN and the proxy's machine too), or
    ``off`` (no ``web_fetch`` tool)."""

    searxng: str = field(repr=False)  # the instance's base URL, without a trailing slash
    max_results: int = 5  # hits a search gives the model, at the most
    timeout: float = 10.0  # seconds a call may take, from its connect to its last byte
    fetch: str = "public"  # "public" | "any" | "off"
    max_fetch_bytes: int = MIB  # bytes of a page read, and of its text given to the model


@dataclass(frozen=True)
class Catalog:
    """Every model, the one a request naming none goes to, and what unknown names get; and
    the MCP servers and the web search the gateway runs tools on."""

    models: tuple
    default: str  # an id
    catch_all: bool  # unknown names go to the default model instead of a 404
    max_running: int = 0  # managed servers running at once; 0 = no limit
    max_memory: int = 0  # bytes they may take together; 0 = the machine's available memory
    mcp_servers: tuple = ()  # McpServerSpec, by the order of the models file
    web_search: Optional[WebSearchSpec] = None  # the [web_search] table; None: no such tools

    def mcp_server(self, name: str) -> Optional[McpServerSpec]:
        """The MCP server declared as ``name``; ``None`` if there is none."""
        return next((spec for spec in self.mcp_servers if spec.name == name), None)

    def find(self, name: Optional[str]) -> Optional[ModelSpec]:
        """The model ``name`` (an id or alias) denotes; ``None`` if it denotes none. A name
        with a ``:tag`` (as Ollama's clients write them, ``qwen:latest``) that is no id or
        alias whole is looked up without its tag; a hub reference, in any of its forms."""
        if not name:
            return self.default_model
        model = self._by_name.get(name) or self._by_name.get(_pulled_name(name))
        if model is None and ":" in name:
            model = self._by_name.get(name.rpartition(":")[0])
        if model is None and self.catch_all:
            return self.default_model
        return model

    def named(self, name: str) -> Optional[ModelSpec]:
        """The model that has ``name`` as its id or an alias, and no other."""
        return self._by_name.get(name)

    @cached_property
    def default_model(self) -> ModelSpec:
        return next(m for m in self.models if m.id == self.default)

    @cached_property
    def prices(self) -> dict:
        """Each priced model's :class:`Price`, by the id usage counts it under."""
        return {m.id or "default": m.price for m in self.models if m.price is not None}

    @cached_property
    def local_models(self) -> frozenset:
        """The ids (as usage counts them) of the models llama.cpp's servers and chatglm.cpp
        serve, wherever they run: not another engine's API nor the cloud's."""
        return frozenset(m.id or "default" for m in self.models if m.backend in LOCAL_BACKENDS)

    @cached_property
    def _by_name(self) -> dict:
        """Every id and alias: every request looks its model up."""
        return {name: model for model in self.models for name in model.names}


def _pulled_name(name: str) -> str:
    """The name a model pulled for the hub reference ``name`` has (empty: none)."""
    try:
        reference = HubReference.parse(name)
    except ValueError:
        return ""
    return reference.ollama_name if reference else ""


def with_defaults(
    request: GenerationRequest, defaults: Optional[GenerationRequest]
) -> GenerationRequest:
    """``request`` with the model's defaults filled in where the client set nothing."""
    if defaults is None:
        return request
    sampling = amended(
        request.sampling,
        **{
            f.name: getattr(defaults.sampling, f.name)
            for f in dataclasses.fields(Sampling)
            if getattr(request.sampling, f.name) in (None, ())
        },
    )
    return amended(
        request,
        sampling=sampling,
        max_tokens=request.max_tokens if request.max_tokens is not None else defaults.max_tokens,
        stop=request.stop or defaults.stop,
        n_keep=request.n_keep if request.n_keep is not None else defaults.n_keep,
        cache_prompt=(
            request.cache_prompt if request.cache_prompt is not None else defaults.cache_prompt
        ),
        template_kwargs={**defaults.template_kwargs, **request.template_kwargs},
    )


def pulled_model(reference: HubReference, args: tuple = ()) -> ModelSpec:
    """A model pulled by a client (Ollama's ``/api/pull``): a server the proxy runs, started
    with ``args`` when first asked for, listed under the name Ollama's users write for it
    (and found by any other form of its reference, see :meth:`Catalog.find`)."""
    return ModelSpec(
        id=reference.ollama_name,
        managed=ManagedSpec(model=reference.name, args=tuple(args)),
        pulled=True,
        stem=reference.model_id,
    )


def with_pulled(catalog: Catalog, references, args: tuple = ()) -> Catalog:
    """``catalog`` and the models pulled for ``references``, each unless a configured model
    already answers to one of its names."""
    taken = {name for model in catalog.models for name in model.names}
    pulled = tuple(
        spec
        for spec in (pulled_model(reference, args) for reference in references)
        if not taken & set(spec.names)
    )
    return dataclasses.replace(catalog, models=catalog.models + pulled) if pulled else catalog
