"""The catalog built from the settings: the models file ``--config`` names, else the one the
historic flags describe, a fleet of one: one model on the ``--llama-api`` replicas (or the
server the proxy runs for ``--model``), answering to any model name.
"""

from __future__ import annotations

import dataclasses
import os
import shlex

from proxy.config.catalog import Catalog, CatalogError, ManagedSpec, ModelSpec, UpstreamSpec
from proxy.config.files import parse_size
from proxy.config.modelsfile import read_catalog
from proxy.config.modeltable import id_problem


def from_settings(settings) -> Catalog:
    """The models file ``--config`` names, else the fleet of one the flags describe."""
    if settings.models.config:
        catalog = read_catalog(settings.models.config, settings.prompts.chat_template)
        return dataclasses.replace(
            catalog,
            max_running=catalog.max_running or settings.servers.max_running,
            max_memory=catalog.max_memory or parse_size(settings.servers.max_memory or "0"),
        )
    slots = settings.upstream.slots
    models, servers, prompts = settings.models, settings.servers, settings.prompts
    if models.backend == "servercpp" and models.model:
        # one command, one model: its server starts loading with the proxy
        managed = ManagedSpec(
            model=models.model,
            args=tuple(shlex.split(servers.server_args)),
            preload=True,
            slot_save=servers.slot_save,
        )
        model = ModelSpec(
            id=models.model_name or os.path.basename(models.model),
            chat_template=prompts.chat_template,
            managed=managed,
            affinity=models.affinity == "on",
            reasoning=prompts.reasoning,
            drop_hosted_tools=models.hosted_tools == "drop",
        )
        problem = id_problem(model.id)
        if problem:
            raise CatalogError(
                f"the model id {model.id!r} (--model-name, else the model "
                f"file's name) cannot name the server's log file and slot "
                f"folder: it {problem}"
            )
        return Catalog(
            (model,),
            model.id,
            catch_all=True,
            max_running=servers.max_running,
            max_memory=parse_size(servers.max_memory or "0"),
        )
    model = ModelSpec(
        id=settings.models.model_name,
        backend=settings.models.backend,
        upstreams=tuple(UpstreamSpec(url.rstrip("/"), slots) for url in settings.upstream.llama_api)
        if settings.models.backend == "servercpp"
        else (),
        embedding_upstream=(
            UpstreamSpec(settings.upstream.embedding_api.rstrip("/"), slots)
            if settings.upstream.embedding_api
            else None
        ),
        chat_template=settings.prompts.chat_template,
        path=settings.models.model,
        affinity=settings.models.affinity == "on",
        upstream_key=settings.upstream.llama_api_key,
        reasoning=settings.prompts.reasoning,
        drop_hosted_tools=settings.models.hosted_tools == "drop",
    )
    return Catalog((model,), model.id, catch_all=True)
