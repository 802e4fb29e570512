"""Backends, chosen by name in the settings."""
from __future__ import annotations

from proxy.backends.base import Backend
from proxy.config import Settings, unescape


def create_backend(settings: Settings) -> Backend:
    """Make the backend ``settings.backend`` names, ready to serve."""
    if settings.backend == "chatglm":  # imported here: chatglm-cpp is an optional extra
        from proxy.backends.chatglm.backend import load_backend

        return load_backend(settings)
    from proxy.backends.servercpp.backend import ServerCppBackend, build_template_factory
    from proxy.backends.servercpp.client import UpstreamClient
    from proxy.fleet.admission import Admission
    from proxy.fleet.slots import SlotCount
    from proxy.prompting import HistoricTemplate

    historic = HistoricTemplate(unescape(settings.chat_prompt), unescape(settings.user_name),
                                unescape(settings.ai_name), unescape(settings.system_name),
                                unescape(settings.stop))
    def client(url: str) -> UpstreamClient:
        return UpstreamClient(url, api_key=settings.llama_api_key, pool_size=settings.threads,
                              connect_timeout=settings.connect_timeout,
                              read_timeout=settings.upstream_timeout)

    def admission(url: str) -> Admission:
        return Admission(f"the upstream {url}", SlotCount(configured=settings.slots or None),
                         max_queue=settings.max_queue, queue_timeout=settings.queue_timeout,
                         remedy=", or give the server more slots (--parallel)")

    embedding = None
    if settings.embedding_api:
        embedding = (client(settings.embedding_api), admission(settings.embedding_api))
    return ServerCppBackend(client(settings.llama_api),
                            build_template_factory(settings.chat_template, historic),
                            admission(settings.llama_api), settings.model_name, embedding)
