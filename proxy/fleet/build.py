"""Make the fleet the settings describe: every model of the catalog, each replica a backend."""
from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Iterable, Optional

from proxy.backends.base import Backend
from proxy.backends.servercpp.client import probe_ready
from proxy.config import (Settings, cache_dir, child_environment, parse_size, supervisor_address,
                          unescape)
from proxy.errors import UpstreamUnavailableError
from proxy.backends.admission import Admission, LineWatch
from proxy.fleet.catalog import Catalog, ModelSpec, UpstreamSpec, from_settings
from proxy.fleet.fleet import Fleet, ServedModel, Replica
from proxy.fleet import engine, liveness, memory, slotcache
from proxy.fleet.slotcache import SlotFiles
from proxy.fleet.binaries import find_llama_server
from proxy.fleet.health import Rotation
from proxy.fleet.liveness import LiveConversations
from proxy.fleet.managed import ManagedBackend
from proxy.fleet.processes import Launch, ManagedServer, ProcessPool, command_for
from proxy.fleet.remote import Supervised
from proxy.backends.slots import SlotCount
from proxy.ops.metrics import Metrics
from proxy.redis_client import connect

logger = logging.getLogger(__name__)


def build_fleet(settings: Settings, catalog: Catalog | None = None,
                metrics: Optional[Metrics] = None) -> Fleet:
    """The fleet of ``catalog`` (default: the models file, or the flags' fleet of one).

    Servers the proxy runs are this process's own, or, in a gunicorn worker, handles on the
    supervisor's. A template, key file or model file that cannot be used is a ``ValueError``
    naming it.
    """
    catalog = catalog or from_settings(settings)
    pool, runner, servers = None, None, {}
    if any(spec.managed for spec in catalog.models):
        supervisor = supervisor_address()
        if supervisor:
            runner = Supervised(*supervisor)
            servers = runner.servers()
        else:
            pool, servers = managed_servers(catalog, settings)
            runner = pool
    models = []
    try:
        for spec in catalog.models:
            replicas = (_managed(spec, servers[spec.id], settings, metrics) if spec.managed
                        else _replicas(spec, settings, metrics))
            by_name = {replica.name: replica for replica in replicas}
            rotation = Rotation(lambda name, by_name=by_name: by_name[name].backend.health().ok)
            models.append(ServedModel(spec, replicas, rotation,
                                      shared=_shared(spec, replicas, settings)))
    except BaseException:
        for model in models:
            for replica in model.replicas:
                replica.backend.close()
        raise
    if pool is not None:
        preload(pool.servers)
    return Fleet(catalog, models, runner)


def _shared(spec: ModelSpec, replicas: tuple, settings: Settings) -> Optional[LiveConversations]:
    """The live conversations every proxy shares through Redis, for a model whose
    conversations have replicas to choose among."""
    if not (settings.redis_url and spec.affinity and len(replicas) > 1):
        return None
    client = connect(settings.redis_url, timeout=liveness.TIMEOUT, retry=False)
    return LiveConversations(client, spec.id or "default", settings.live_window)


def fleet_of(backend: Backend, settings: Settings) -> Fleet:
    """A fleet of one model on ``backend`` alone, answering to any model name: the app's
    router when it is given a backend of its own (tests inject fakes this way). A fleet
    is its own router."""
    if isinstance(backend, Fleet):
        return backend
    spec = ModelSpec(id=settings.model_name, affinity=settings.affinity == "on")
    rotation = Rotation(lambda name: backend.health().ok)
    return Fleet(Catalog((spec,), spec.id, catch_all=True),
                 [ServedModel(spec, (Replica(backend.name, backend),), rotation)])


def managed_servers(catalog: Catalog, settings: Settings) -> tuple:
    """The pool of the servers the proxy runs, and each model's server by model id."""
    managed = [spec for spec in catalog.models if spec.managed]
    budget = catalog.max_memory or memory.available(
        any(memory.uses_gpu(spec.managed.args) for spec in managed))
    pool = ProcessPool(catalog.max_running, budget)
    servers = {spec.id: pool.add(_server(spec, settings, pool)) for spec in managed}
    return pool, servers


def preload(servers: Iterable[ManagedServer]) -> None:
    """Start the servers marked ``preload`` in the background."""
    for server in servers:
        if server.preload:
            threading.Thread(target=_preload, args=(server,), daemon=True,
                             name=f"preload-{server.name}").start()


def _preload(server: ManagedServer) -> None:
    """Start a server at boot; a failure is logged, and requests try again."""
    try:
        server.ensure()
    except UpstreamUnavailableError as exc:
        logger.error("preloading %s failed: %s", server.name, exc.message)


def _server(spec: ModelSpec, settings: Settings, pool: ProcessPool) -> ManagedServer:
    """A model's server, not started: its command on a free local port, its log file."""
    managed = spec.managed
    if managed.model and not os.access(managed.model, os.R_OK):
        raise ValueError(f"cannot read the model file {managed.model} of {spec.id}")
    template = managed.command
    env = child_environment()
    label = "its command"
    slot_files = None
    if template is None:
        program = find_llama_server(settings.llama_server)
        if program.bundled:
            try:
                engine.check_args(managed.args)
            except engine.FlagError as exc:
                raise ValueError(f"the server arguments of {spec.id}: {exc}") from None
        args = managed.args
        slot_files = _slot_files(spec, settings, program.label)
        if slot_files is not None and "--slot-save-path" not in args:
            args = (*args, "--slot-save-path", str(slot_files.folder))
        template = (*program.command, "-m", "${MODEL}", "--host", "127.0.0.1", "--port",
                    "${PORT}", *args)
        env = child_environment(program.libraries)
        label = program.label
    port = free_port()
    command = command_for(template, port, managed.model)
    launch = Launch(spec.id, command, port,
                    Path(settings.log_dir or os.path.join(cache_dir(), "logs"))
                    / f"{spec.id}.log", env, ttl=managed.ttl, engine=label,
                    estimate=_estimate(managed.model, command))
    return ManagedServer(launch, pool, probe_ready, preload=managed.preload,
                         slot_files=slot_files,
                         save_every_turn=managed.slot_save == "every-turn")


def _slot_files(spec: ModelSpec, settings: Settings, engine: str) -> Optional[SlotFiles]:
    """Where the KV caches of a llama-server the proxy runs are kept while it is stopped
    (a server it runs from its own command may be of a kind that cannot save them)."""
    budget = parse_size(settings.slot_cache_size)
    if spec.managed.slot_save == "off" or not budget:
        return None
    folder = Path(settings.slot_cache_dir or os.path.join(cache_dir(), "slots")) / spec.id
    return SlotFiles(folder, slotcache.fingerprint(spec.managed.model, spec.managed.args,
                                                   engine), budget)


def _estimate(model: str, command: tuple) -> int:
    """The memory a server of ``model`` run by ``command`` needs (0: not a GGUF it can read)."""
    if not model:
        return 0
    try:
        return memory.estimate(memory.read_shape(model), command).total
    except ValueError as exc:
        logger.warning("the memory %s needs is unknown: %s", model, exc)
        return 0


def _managed(spec: ModelSpec, server, settings: Settings, metrics) -> tuple:
    """The one replica of a model the proxy runs, in front of its server."""
    backend = _servercpp(UpstreamSpec(server.url), spec, settings, None, metrics)
    return (Replica(server.url, ManagedBackend(server, backend)),)


def _replicas(spec: ModelSpec, settings: Settings, metrics) -> tuple:
    if spec.backend == "chatglm":  # imported here: chatglm-cpp is an optional extra
        from proxy.backends.chatglm.backend import load_backend

        return (Replica(spec.path, load_backend(settings, spec.path, spec.id,
                                                spec.reasoning)),)
    embedding = None
    if spec.embedding_upstream:  # one server for every replica: one client, one line
        embedding = (_client(spec.embedding_upstream, spec, settings),
                     _admission(spec.embedding_upstream, spec, settings, metrics))
    return tuple(Replica(upstream.url, _servercpp(upstream, spec, settings, embedding, metrics))
                 for upstream in spec.upstreams)


def _servercpp(upstream: UpstreamSpec, spec: ModelSpec, settings: Settings, embedding,
               metrics) -> Backend:
    from proxy.backends.servercpp.backend import ServerCppBackend
    from proxy.prompting import HistoricTemplate, TemplateChoice

    historic = HistoricTemplate(unescape(settings.chat_prompt), unescape(settings.user_name),
                                unescape(settings.ai_name), unescape(settings.system_name),
                                unescape(settings.stop))
    return ServerCppBackend(_client(upstream, spec, settings),
                            TemplateChoice(spec.chat_template, historic),
                            _admission(upstream, spec, settings, metrics), spec.id, embedding,
                            reasoning=spec.reasoning)


def _client(upstream: UpstreamSpec, spec: ModelSpec, settings: Settings):
    from proxy.backends.servercpp.client import UpstreamClient

    return UpstreamClient(upstream.url, api_key=spec.upstream_key or settings.llama_api_key,
                          pool_size=settings.threads, connect_timeout=settings.connect_timeout,
                          read_timeout=settings.upstream_timeout,
                          label=server_label(upstream, spec))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_label(upstream: UpstreamSpec, spec: ModelSpec) -> str:
    """How errors name a model's server to clients: by the model and replica, never by the
    server's address."""
    model = f"model {spec.id!r}" if spec.id else "the model"
    if upstream == spec.embedding_upstream:
        return f"the embedding server of {model}"
    if len(spec.upstreams) > 1 and upstream in spec.upstreams:
        return f"replica {spec.upstreams.index(upstream) + 1} of {model}"
    return f"the server of {model}"


def _admission(upstream: UpstreamSpec, spec: ModelSpec, settings: Settings,
               metrics: Optional[Metrics]) -> Admission:
    watch = metrics.line(spec.id or "default", upstream.url) if metrics else LineWatch()
    return Admission(server_label(upstream, spec), SlotCount(configured=upstream.slots or None),
                     max_queue=settings.max_queue, queue_timeout=settings.queue_timeout,
                     remedy=", or give the server more slots (--parallel)", watch=watch)
