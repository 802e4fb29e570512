"""Make the servers of the models the proxy runs itself: one per model, none started, in one
pool that counts their memory and how many run."""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import threading
from pathlib import Path
from typing import Iterable, Optional

from proxy.backends.servercpp import gguffile
from proxy.backends.wire.client import probe_ready
from proxy.config.build import from_settings
from proxy.config.catalog import Catalog, ModelSpec, with_pulled
from proxy.config.files import parse_size
from proxy.config.hubref import HubFileReference, HubReference, is_hub_reference
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.core.errors import UpstreamUnavailableError
from proxy.servers import engine, hub, memory, slotcache
from proxy.servers.binaries import find_llama_server, find_sd_server
from proxy.servers.hub import PulledModels
from proxy.servers.launch import Launch, bind_port, command_for
from proxy.servers.pool import ProcessPool
from proxy.servers.processes import ManagedServer
from proxy.servers.slotcache import SavedSlots

logger = logging.getLogger(__name__)


PROJECTOR_FLAGS = ("--mmproj", "-mm", "--no-mmproj", "--mmproj-url", "-mmu")


def load_catalog(settings: Settings, runtime: Runtime) -> Catalog:
    """What this proxy serves: its models file (or its flags' model) and the models clients
    pulled, each named on a hub downloaded by whoever runs its server (a gunicorn worker finds
    it in the cache the supervisor filled)."""
    catalog = with_pulled(
        from_settings(settings),
        pulled_models(runtime).references(),
        tuple(shlex.split(settings.servers.server_args)),
    )
    return download_models(catalog, offline=runtime.supervisor is not None)


def pulled_anew(catalog: Catalog, settings: Settings, runtime: Runtime) -> Catalog:
    """``catalog`` with the pulled models the list of pulled models names now (each found in
    the hub's cache, where its pull left it)."""
    configured = dataclasses.replace(
        catalog, models=tuple(spec for spec in catalog.models if not spec.pulled)
    )
    args = tuple(shlex.split(settings.servers.server_args))
    return download_models(
        with_pulled(configured, pulled_models(runtime).references(), args), offline=True
    )


def pulled_models(runtime: Runtime) -> PulledModels:
    """The models clients pulled, kept with the proxy's other files."""
    return PulledModels(Path(runtime.cache_dir) / "pulled.json")


def download_models(catalog: Catalog, *, offline: bool = False) -> Catalog:
    """``catalog`` with each model it names on a hub downloaded (``offline``: from the cache
    alone) and named by its files; a ``ValueError`` naming the model when one cannot be. A
    pulled model whose files left the cache is served no more (it is pulled again)."""
    found = (download_model(spec, offline) for spec in catalog.models)
    return dataclasses.replace(catalog, models=tuple(spec for spec in found if spec is not None))


def download_model(
    spec: ModelSpec, offline: bool = False, progress: Optional[hub.Progress] = None
) -> Optional[ModelSpec]:
    """``spec`` with its model's files found on this machine, downloaded from the hub if need
    be (a pulled model's only in the cache: it was downloaded when it was pulled)."""
    managed = spec.managed
    if managed is None:
        return spec
    reference = HubReference.parse(managed.model)
    words = (*managed.args, *(managed.command or ()))
    if reference is None and not any(map(is_hub_reference, words)):
        return spec
    offline = offline or (spec.pulled and progress is None)
    try:
        args = _fetched(managed.args, spec.id, offline, progress)
        command = _fetched(managed.command, spec.id, offline, progress)
        managed = dataclasses.replace(managed, args=args, command=command)
        if reference is None:
            return dataclasses.replace(spec, managed=managed)
        if not offline:
            logger.info("fetching %s for %s (kept in the hub's cache)", reference.name, spec.id)
        files = hub.download(reference, offline=offline, progress=progress)
    except hub.HubError as exc:
        if spec.pulled and progress is None:
            logger.warning("the pulled model %s is served no more: %s", spec.id, exc)
            return None
        raise ValueError(f"the model of {spec.id}: {exc}") from None
    if files.projector and spec.backend == "servercpp" and not set(PROJECTOR_FLAGS) & set(args):
        args = (*args, "--mmproj", files.projector)  # one that sees or hears, as llama-server -hf
    return dataclasses.replace(
        spec,
        managed=dataclasses.replace(managed, model=files.model, args=args, source=reference.name),
    )


def _fetched(words: Optional[tuple], model: str, offline: bool, progress) -> Optional[tuple]:
    """A server's command line (or its arguments), each file it names on a hub (checked as
    the models file was read) downloaded if need be and named by its path."""
    if words is None:
        return None
    fetched = []
    for word in words:
        file = HubFileReference.parse(word)
        if file is not None:
            if not offline:
                logger.info("fetching %s for %s (kept in the hub's cache)", file.name, model)
            word = hub.download_file(file, offline=offline, progress=progress)
        fetched.append(word)
    return tuple(fetched)


def managed_servers(catalog: Catalog, settings: Settings, runtime: Runtime) -> tuple:
    """The pool of the servers the proxy runs, and each model's server by model id."""
    managed = [spec for spec in catalog.models if spec.managed]
    budget = catalog.max_memory or memory.available(
        any(memory.uses_gpu(spec.managed.args) for spec in managed)
    )
    pool = ProcessPool(catalog.max_running, budget)
    servers = {spec.id: add_server(pool, spec, settings, runtime) for spec in managed}
    return pool, servers


def refresh_servers(
    pool: ProcessPool, servers: dict, catalog: Catalog, settings: Settings, runtime: Runtime
) -> dict:
    """The servers of ``catalog``'s models the proxy runs: those of ``servers`` it still
    has, new ones added to ``pool``; the others retire once their requests have ended."""
    now = {}
    for spec in catalog.models:
        if spec.managed:
            now[spec.id] = servers.get(spec.id) or add_server(pool, spec, settings, runtime)
    for model_id, server in servers.items():
        if model_id not in now:
            threading.Thread(
                target=pool.retire,
                args=(server, settings.serving.graceful_timeout),
                name=f"retire-{model_id}",
                daemon=True,
            ).start()
    return now


def add_server(
    pool: ProcessPool, spec: ModelSpec, settings: Settings, runtime: Runtime
) -> ManagedServer:
    """The server of ``spec`` in ``pool``, not started."""
    return pool.add(_server(spec, settings, runtime, pool))


def preload(servers: Iterable[ManagedServer]) -> None:
    """Start the servers marked ``preload`` in the background."""
    for server in servers:
        if server.preload:
            threading.Thread(
                target=_preload, args=(server,), daemon=True, name=f"preload-{server.name}"
            ).start()


def _preload(server: ManagedServer) -> None:
    """Start a server at boot; a failure is logged, and requests try again."""
    try:
        server.ensure()
    except UpstreamUnavailableError as exc:
        logger.error("preloading %s failed: %s", server.name, exc.message)


def _server(
    spec: ModelSpec, settings: Settings, runtime: Runtime, pool: ProcessPool
) -> ManagedServer:
    """A model's server, not started: its command on a local port kept for it, its log file."""
    managed = spec.managed
    if managed.model and spec.backend == "sdserver":  # GGUF or safetensors: it reads both
        if not os.access(managed.model, os.R_OK):
            raise ValueError(f"cannot read the model file {managed.model} (the model of {spec.id})")
    elif managed.model:
        try:
            gguffile.check(managed.model)
        except ValueError as exc:
            if managed.command is None or not os.access(managed.model, os.R_OK):
                raise ValueError(f"{exc} (the model of {spec.id})") from None
    template = managed.command
    env = runtime.child_environment()
    label = "its command"
    slot_files = None
    if template is None and spec.backend == "sdserver":
        program = find_sd_server(settings.servers.sd_server)
        template = (*program.command, "-m", "${MODEL}", "--listen-ip", "127.0.0.1",
                    "--listen-port", "${PORT}", *managed.args)  # fmt: skip
        label = program.label
    elif template is None:
        program = find_llama_server(settings.servers.llama_server)
        if program.bundled:
            try:
                engine.check_args(managed.args)
            except engine.FlagError as exc:
                raise ValueError(f"the server arguments of {spec.id}: {exc}") from None
        args = managed.args
        slot_files = _slot_files(spec, settings, runtime, program.label)
        if slot_files is not None and "--slot-save-path" not in args:
            args = (*args, "--slot-save-path", str(slot_files.folder))
        template = (
            *program.command,
            "-m",
            "${MODEL}",
            "--host",
            "127.0.0.1",
            "--port",
            "${PORT}",
            *args,
        )
        env = runtime.child_environment(program.libraries)
        label = program.label
    port = bind_port()
    command = command_for(template, port.getsockname()[1], managed.model)
    launch = Launch(
        spec.id,
        command,
        port.getsockname()[1],
        Path(settings.servers.log_dir or os.path.join(runtime.cache_dir, "logs"))
        / f"{spec.file_stem}.log",
        env,
        ttl=managed.ttl,
        program=label,
        estimate=memory.drawing_estimate(command)
        if spec.backend == "sdserver"
        else _estimate(managed.model, command),
    )
    return ManagedServer(
        launch,
        pool,
        probe_ready,
        preload=managed.preload,
        slot_files=slot_files,
        save_every_turn=managed.slot_save == "every-turn",
        port=port,
    )


def _slot_files(
    spec: ModelSpec, settings: Settings, runtime: Runtime, program: str
) -> Optional[SavedSlots]:
    """Where the KV caches of a llama-server the proxy runs are kept while it is stopped
    (a server it runs from its own command may be of a kind that cannot save them)."""
    budget = parse_size(settings.servers.slot_cache_size)
    if spec.managed.slot_save == "off" or not budget:
        return None
    folder = (
        Path(settings.servers.slot_cache_dir or os.path.join(runtime.cache_dir, "slots"))
        / spec.file_stem
    )
    return SavedSlots(
        folder, slotcache.fingerprint(spec.managed.model, spec.managed.args, program), budget
    )


def _estimate(model: str, command: tuple) -> int:
    """The memory a server of ``model`` run by ``command`` needs (0: not a GGUF it can read)."""
    if not model:
        return 0
    try:
        return memory.estimate(memory.read_shape(model), command).total
    except ValueError as exc:
        logger.warning("the memory %s needs is unknown: %s", model, exc)
        return 0
