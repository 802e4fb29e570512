"""Make the fleet the settings describe: every model of the catalog, each replica a backend."""
from __future__ import annotations

from proxy.backends.base import Backend
from proxy.config import Settings, unescape
from proxy.fleet.admission import Admission
from proxy.fleet.catalog import Catalog, ModelSpec, Upstream, from_settings
from proxy.fleet.fleet import Fleet, Model, Replica
from proxy.fleet.health import Rotation
from proxy.fleet.slots import SlotCount


def build_fleet(settings: Settings, catalog: Catalog | None = None) -> Fleet:
    """The fleet of ``catalog`` (default: the models file, or the flags' fleet of one).

    A template, key file or model file that cannot be used is a ``ValueError`` naming it.
    """
    catalog = catalog or from_settings(settings)
    models = []
    try:
        for spec in catalog.models:
            replicas = _replicas(spec, settings)
            by_name = {replica.name: replica for replica in replicas}
            rotation = Rotation(lambda name, by_name=by_name: by_name[name].backend.health().ok)
            models.append(Model(spec, replicas, rotation))
    except BaseException:
        for model in models:
            for replica in model.replicas:
                replica.backend.close()
        raise
    return Fleet(catalog, models)


def _replicas(spec: ModelSpec, settings: Settings) -> tuple:
    if spec.backend == "chatglm":  # imported here: chatglm-cpp is an optional extra
        from proxy.backends.chatglm.backend import load_backend

        return (Replica(spec.path, load_backend(settings, spec.path, spec.id)),)
    embedding = None
    if spec.embedding_upstream:  # one server for every replica: one client, one line
        embedding = (_client(spec.embedding_upstream, spec, settings),
                     _admission(spec.embedding_upstream, settings))
    return tuple(Replica(upstream.url, _servercpp(upstream, spec, settings, embedding))
                 for upstream in spec.upstreams)


def _servercpp(upstream: Upstream, spec: ModelSpec, settings: Settings, embedding) -> Backend:
    from proxy.backends.servercpp.backend import ServerCppBackend, build_template_factory
    from proxy.prompting import HistoricTemplate

    historic = HistoricTemplate(unescape(settings.chat_prompt), unescape(settings.user_name),
                                unescape(settings.ai_name), unescape(settings.system_name),
                                unescape(settings.stop))
    return ServerCppBackend(_client(upstream, spec, settings),
                            build_template_factory(spec.chat_template, historic),
                            _admission(upstream, settings), spec.id, embedding)


def _client(upstream: Upstream, spec: ModelSpec, settings: Settings):
    from proxy.backends.servercpp.client import UpstreamClient

    return UpstreamClient(upstream.url, api_key=spec.upstream_key or settings.llama_api_key,
                          pool_size=settings.threads, connect_timeout=settings.connect_timeout,
                          read_timeout=settings.upstream_timeout)


def _admission(upstream: Upstream, settings: Settings) -> Admission:
    return Admission(f"the upstream {upstream.url}", SlotCount(configured=upstream.slots or None),
                     max_queue=settings.max_queue, queue_timeout=settings.queue_timeout,
                     remedy=", or give the server more slots (--parallel)")
