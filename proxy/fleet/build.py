"""Making the fleet the settings describe (every model of the catalog, each replica a
backend), and making it anew while the proxy serves.

Serving another catalog (a model pulled or deleted, or the models file read again): a model
unchanged keeps its replicas and the conversations they hold; one removed or changed
finishes what it has in flight before its server stops. In one process the fleet changes at
once. Under gunicorn or granian, the supervisor runs the new catalog's servers and the master
starts its workers afresh (``SIGHUP``: the streams in flight finish, the new workers read the
files anew).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from typing import Callable, Optional

from proxy.backends.base import Backend
from proxy.backends.servercpp.card import file_card
from proxy.config.catalog import Catalog, ModelSpec, UpstreamSpec
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings, unescape
from proxy.config.upstreamoptions import header_value
from proxy.core.outages import Outages
from proxy.fleet import liveness
from proxy.fleet.fleet import Fleet
from proxy.fleet.health import Rotation
from proxy.fleet.liveness import LiveConversations
from proxy.fleet.replica import ManagedReplica, Replica
from proxy.fleet.servedmodel import ServedModel
from proxy.ops.metrics import Metrics
from proxy.queue.admission import Admission, QueueWatch
from proxy.queue.fair import SlotCount
from proxy.queue.redisshared import RedisQueue, Renewals
from proxy.queue.remote import SupervisedQueue
from proxy.queue.shared import PROBE_EVERY, SHARED_QUEUE, SharedAdmission
from proxy.redis_client import connect
from proxy.servers.build import add_server, load_catalog, managed_servers, preload
from proxy.servers.pool import ProcessPool
from proxy.servers.remote import Supervised


def build_fleet(
    settings: Settings,
    runtime: Runtime,
    catalog: Catalog | None = None,
    metrics: Optional[Metrics] = None,
) -> Fleet:
    """The fleet of ``catalog`` (default: what the proxy serves, :func:`load_catalog`).

    Servers the proxy runs are this process's own, or, in a gunicorn worker, handles on the
    supervisor's. A template, key file or model file that cannot be used is a ``ValueError``
    naming it.
    """
    return Models(settings, runtime, metrics).make_fleet(catalog or load_catalog(settings, runtime))


class Models:
    """How the models of a fleet are made: every one at start, and one more (a model pulled)
    while it serves."""

    def __init__(self, settings: Settings, runtime: Runtime, metrics: Optional[Metrics]) -> None:
        self.settings = settings
        self.runtime = runtime
        self.admissions = Admissions(settings, runtime, metrics)
        self.runner: Optional[ProcessPool | Supervised] = None
        self._servers: dict = {}

    def make_fleet(self, catalog: Catalog) -> Fleet:
        """The fleet of ``catalog``: the servers the proxy runs made (those marked
        ``preload`` starting)."""
        if any(spec.managed for spec in catalog.models):
            self._run(catalog)
        models = []
        try:
            models = [self.make_model(spec) for spec in catalog.models]
        except BaseException:
            for model in models:
                for replica in model.replicas:
                    replica.backend.close()
            raise
        if isinstance(self.runner, ProcessPool):
            preload(self.runner.servers)
        return Fleet(catalog, models, self.runner)

    def make_model(self, spec: ModelSpec) -> ServedModel:
        """The model ``spec`` describes, on its replicas (its server made if the proxy runs
        it and has not made it yet)."""
        if spec.managed:
            replicas = _managed(spec, self._server(spec), self.settings, self.admissions)
        else:
            replicas = _replicas(spec, self.settings, self.admissions)
        by_name = {replica.name: replica for replica in replicas}
        rotation = Rotation(lambda name, by_name=by_name: by_name[name].probe().ok)
        return ServedModel(spec, replicas, rotation, shared=_shared(spec, replicas, self.settings))

    def _run(self, catalog: Catalog) -> None:
        """What runs the servers: this process's pool, or the supervisor's."""
        if self.runtime.supervisor:
            self.runner = Supervised(*self.runtime.supervisor)
            self._servers = self.runner.servers()
        else:
            self.runner, self._servers = managed_servers(catalog, self.settings, self.runtime)

    def _server(self, spec: ModelSpec):
        if self.runner is None:
            self._run(Catalog((), "", catch_all=False))
        if spec.id not in self._servers and isinstance(self.runner, ProcessPool):
            self._servers[spec.id] = add_server(self.runner, spec, self.settings, self.runtime)
        elif spec.id not in self._servers:
            self._servers = self.runner.servers()  # the supervisor read the models anew
        return self._servers[spec.id]


def _shared(spec: ModelSpec, replicas: tuple, settings: Settings) -> Optional[LiveConversations]:
    """The live conversations every proxy shares through Redis, for a model whose
    conversations have replicas to choose among."""
    if not (settings.stores.redis_url and spec.affinity and len(replicas) > 1):
        return None
    client = connect(settings.stores.redis_url, timeout=liveness.TIMEOUT, retry=False)
    return LiveConversations(client, spec.id or "default", settings.stores.live_window)


def fleet_of(backend: Backend, settings: Settings) -> Fleet:
    """A fleet of one model on ``backend`` alone, answering to any model name: the app's
    router when it is given a backend of its own (tests inject fakes this way). A fleet
    is its own router."""
    if isinstance(backend, Fleet):
        return backend
    spec = ModelSpec(
        id=settings.models.model_name,
        affinity=settings.models.affinity == "on",
        drop_hosted_tools=settings.models.hosted_tools == "drop",
    )
    rotation = Rotation(lambda name: backend.probe().ok)
    return Fleet(
        Catalog((spec,), spec.id, catch_all=True),
        [ServedModel(spec, (Replica(backend.name, backend),), rotation)],
    )


def _managed(spec: ModelSpec, server, settings: Settings, admissions: Admissions) -> tuple:
    """The one replica of a model the proxy runs, in front of its server."""
    if spec.backend == "sdserver":
        drawing = _sdserver(UpstreamSpec(server.url), spec, settings, admissions)
        return (ManagedReplica(server, drawing),)
    backend = _servercpp(UpstreamSpec(server.url), spec, settings, None, admissions)
    card = file_card(spec.managed.model, spec.managed.capabilities) if spec.managed.model else None
    return (ManagedReplica(server, backend, card),)


def _replicas(spec: ModelSpec, settings: Settings, admissions: Admissions) -> tuple:
    if spec.backend == "chatglm":  # imported here: chatglm-cpp is an optional extra
        from proxy.backends.chatglm.backend import load_backend

        return (Replica(spec.path, load_backend(settings, spec.path, spec.id, spec.reasoning)),)
    if spec.backend in ("openai", "anthropic"):
        return tuple(
            Replica(upstream.url, _relay(upstream, spec, settings, admissions))
            for upstream in spec.upstreams
        )
    if spec.backend == "sdserver":
        return tuple(
            Replica(upstream.url, _sdserver(upstream, spec, settings, admissions))
            for upstream in spec.upstreams
        )
    embedding = None
    if spec.embedding_upstream:  # one server for every replica: one client, one queue
        embedding = (
            _client(spec.embedding_upstream, spec, settings),
            admissions.make(spec.embedding_upstream, spec),
        )
    return tuple(
        Replica(upstream.url, _servercpp(upstream, spec, settings, embedding, admissions))
        for upstream in spec.upstreams
    )


def _servercpp(
    upstream: UpstreamSpec, spec: ModelSpec, settings: Settings, embedding, admissions: Admissions
) -> Backend:
    from proxy.backends.servercpp.backend import ServerCppBackend
    from proxy.backends.servercpp.chattemplate import HistoricTemplate
    from proxy.backends.servercpp.prompting import TemplateChoice

    prompts = settings.prompts
    historic = HistoricTemplate(
        unescape(prompts.chat_prompt),
        unescape(prompts.user_name),
        unescape(prompts.ai_name),
        unescape(prompts.system_name),
        unescape(prompts.stop),
    )
    return ServerCppBackend(
        _client(upstream, spec, settings),
        TemplateChoice(spec.chat_template, historic),
        admissions.make(upstream, spec),
        spec.id,
        embedding,
        reasoning=spec.reasoning,
    )


def _sdserver(
    upstream: UpstreamSpec, spec: ModelSpec, settings: Settings, admissions: Admissions
) -> Backend:
    """A replica on stable-diffusion.cpp's sd-server."""
    from proxy.backends.sdserver.backend import SdServerBackend

    hints = {
        "remedy": "is sd-server running, and is the model's upstream URL right?",
        "timeout_remedy": "raise --upstream-timeout or ask for fewer or smaller pictures",
    }
    client = _client(upstream, spec, settings, **hints)
    one_at_a_time = dataclasses.replace(upstream, slots=upstream.slots or 1)  # as it draws
    return SdServerBackend(client, admissions.make(one_at_a_time, spec), spec.id)


def _relay(
    upstream: UpstreamSpec, spec: ModelSpec, settings: Settings, admissions: Admissions
) -> Backend:
    """A replica on a server that speaks OpenAI's API or Anthropic's Messages API."""
    from proxy.backends.anthropic.backend import AnthropicBackend
    from proxy.backends.anthropic.payload import VERSION
    from proxy.backends.openai.backend import OpenAIBackend

    timeouts = spec.timeouts
    hints = {
        "public_api": True,
        "remedy": "is it running, and is the model's upstream URL right?",
        "key_remedy": (
            f"set {spec.upstream_key_env} to the key it expects"
            if spec.upstream_key_env
            else "name the environment variable that holds its key (upstream_key_env)"
        ),
        "headers": upstream_headers(spec),
        "first_byte_timeout": timeouts.first_byte,
    }
    if timeouts.read is not None:
        hints["timeout_remedy"] = "raise the model's timeouts.read or ask for fewer tokens"
    key = upstream_key(spec)  # never --llama-api-key: that is for the servers of this machine
    admission = admissions.make(upstream, spec)
    if spec.backend == "anthropic":  # its key goes as x-api-key, beside the API's version
        hints["headers"].update(
            {"anthropic-version": VERSION, **({"x-api-key": key} if key else {})}
        )
        client = _client(upstream, spec, settings, api_key="", **hints)
        return AnthropicBackend(client, admission, spec.id, spec.upstream_model, spec.filters)
    client = _client(upstream, spec, settings, api_key=key, **hints)
    return OpenAIBackend(
        client,
        admission,
        spec.id,
        spec.upstream_model,
        filters=spec.filters,
        endpoints=spec.endpoints,
        price=spec.price,
    )


def _client(
    upstream: UpstreamSpec,
    spec: ModelSpec,
    settings: Settings,
    api_key: Optional[str] = None,
    **hints,
):
    """``api_key``: sent as a bearer token (by default the model's key, else
    ``--llama-api-key``); ``hints``: what the operator checks when the server cannot be
    reached or refuses the key, and headers (:class:`UpstreamClient`'s)."""
    from proxy.backends.wire.client import UpstreamClient

    server, timeouts = settings.upstream, spec.timeouts
    return UpstreamClient(
        upstream.url,
        api_key=(upstream_key(spec) or server.llama_api_key) if api_key is None else api_key,
        pool_size=settings.serving.threads,
        connect_timeout=timeouts.connect or server.connect_timeout,
        read_timeout=timeouts.read or server.upstream_timeout,
        label=server_label(upstream, spec),
        **hints,
    )


def upstream_key(spec: ModelSpec) -> str:
    """The key the model's upstream expects: given in the models file, or read from the
    environment variable it names (``ValueError`` naming the variable when it is unset)."""
    if not spec.upstream_key_env:
        return spec.upstream_key
    key = os.environ.get(spec.upstream_key_env, "")
    if not key:
        raise ValueError(
            f"the environment variable {spec.upstream_key_env}, which holds the upstream key "
            f"of model {spec.id!r}, is not set"
        )
    return key


def upstream_headers(spec: ModelSpec) -> dict:
    """The headers the model's upstream is sent beside the proxy's own: given in the models
    file, or read from the environment variables it names (``ValueError`` naming the
    variable when one is unset, or holds what a header cannot; never its value)."""
    headers = dict(spec.headers)
    for name, variable in spec.headers_env:
        value = os.environ.get(variable, "")
        if not value:
            raise ValueError(
                f"the environment variable {variable}, which holds the header {name} of "
                f"model {spec.id!r}, is not set"
            )
        if not header_value(value):
            raise ValueError(
                f"the environment variable {variable}, which holds the header {name} of "
                f"model {spec.id!r}, has a line break or other control character in it"
            )
        headers[name] = value
    return headers


def server_label(upstream: UpstreamSpec, spec: ModelSpec) -> str:
    """How errors name a model's server to clients: by the model and replica, never by the
    server's address."""
    model = f"model {spec.id!r}" if spec.id else "the model"
    if upstream == spec.embedding_upstream:
        return f"the embedding server of {model}"
    if len(spec.upstreams) > 1 and upstream in spec.upstreams:
        return f"replica {spec.upstreams.index(upstream) + 1} of {model}"
    return f"the server of {model}"


class Admissions:
    """How this process admits requests to its upstreams' slots: by a queue of its own for
    each, or, where other processes serve them too, by the queue they share
    (a :class:`~proxy.queue.shared.SharedQueue`): Redis's for proxies sharing
    ``--redis-url``, else the supervisor's for gunicorn's workers."""

    def __init__(self, settings: Settings, runtime: Runtime, metrics: Optional[Metrics]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.outages = Outages(
            "the supervisor" if runtime.supervisor else "Redis",
            remote=True,
            stores={SHARED_QUEUE: "the shared queue of the upstreams' slots"},
            probe_every=PROBE_EVERY,
            meanwhile="each process admits requests by its own queue",
        )
        self._redis = None
        self._supervised = None
        if settings.stores.redis_url:
            self._redis = connect(settings.stores.redis_url, retry=False)
            self._renewals = Renewals()
        elif runtime.supervisor:
            self._supervised = Supervised(*runtime.supervisor)
        if metrics and (self._redis or self._supervised):
            metrics.watch_shared_queue(self.outages)

    def make(self, upstream: UpstreamSpec, spec: ModelSpec) -> Admission:
        limits = self.settings.limits
        watch = (
            self.metrics.queue(spec.id or "default", upstream.url) if self.metrics else QueueWatch()
        )
        settings = {
            "name": server_label(upstream, spec),
            "max_queue": limits.max_queue,
            "queue_timeout": limits.queue_timeout,
            "remedy": ", or give the server more slots (--parallel)",
        }
        admission = {**settings, "slots": SlotCount(configured=upstream.slots or None)}
        where = f"{spec.id or 'default'}|{upstream.url}"
        if self._redis is not None:
            shared_queue = RedisQueue(
                self._redis, where, self._renewals, configured=upstream.slots or 0, **settings
            )
        elif self._supervised is not None:
            shared_queue = SupervisedQueue(
                self._supervised,
                where,
                (settings["name"], upstream.slots or None, limits.max_queue,
                 limits.queue_timeout, settings["remedy"]),
            )  # fmt: skip
        else:
            return Admission(watch=watch, **admission)
        return SharedAdmission(shared_queue, self.outages, watch=watch, **admission)


class Anew:
    """Serve a catalog in place of the fleet's."""

    def __init__(self, fleet: Fleet, models: Models, settings: Settings, runtime: Runtime) -> None:
        self.fleet = fleet
        self.models = models
        self.settings = settings
        self.runtime = runtime

    def serve(self, catalog: Callable[[], Catalog]) -> None:
        """Serve what ``catalog()`` gives from now on (the supervisor's own reading of it,
        with one): a ``ValueError`` saying why it cannot be read leaves the fleet as it was."""
        if self.runtime.supervisor:
            Supervised(*self.runtime.supervisor).call("refresh")
            os.kill(os.getppid(), signal.SIGHUP)  # the master starts new workers
            return
        for model in self.fleet.serve_instead(catalog(), self.models.make_model):
            threading.Thread(
                target=self.fleet.retire,
                args=(model, self.settings.serving.graceful_timeout),
                name=f"retire-{model.spec.id}",
                daemon=True,
            ).start()
