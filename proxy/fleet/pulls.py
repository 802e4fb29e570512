"""Models clients pull and delete while the proxy serves (Ollama's ``/api/pull`` and
``/api/delete``): downloaded from the hub into its cache, named in the proxy's list of pulled
models, and served from then on by every process of the proxy (:mod:`proxy.fleet.build`).
"""

from __future__ import annotations

import logging
import shlex
import threading
from typing import Optional

from proxy.config.catalog import Catalog, pulled_model
from proxy.config.hubref import FORM, HubReference
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.core.errors import InvalidRequestError, ModelNotFoundError, UpstreamError
from proxy.fleet.build import Anew, Models
from proxy.fleet.fleet import Fleet
from proxy.servers import hub
from proxy.servers.build import download_model, pulled_anew, pulled_models

logger = logging.getLogger(__name__)


class Pulls:
    """Pull and delete the models clients manage, one change at a time."""

    def __init__(self, fleet: Fleet, models: Models, settings: Settings, runtime: Runtime) -> None:
        self.fleet = fleet
        self.settings = settings
        self.runtime = runtime
        self.registry = pulled_models(runtime)
        self.anew = Anew(fleet, models, settings, runtime)
        self.args = tuple(shlex.split(settings.servers.server_args))
        self._changing = threading.Lock()

    def check(self, name: str) -> None:
        _reference(name)

    def pull(self, name: str, progress: Optional[hub.Progress] = None) -> str:
        """Download the files of the model ``name`` names on the hub (``progress`` hears each
        file's bytes) and serve it; its model id. A 400 naming ``model`` when ``name`` is no
        hub reference, a 502 saying why the hub would not give it."""
        reference = _reference(name)
        spec = pulled_model(reference, self.args)
        configured = self.fleet.catalog.named(spec.id)
        if configured is not None and not configured.pulled:
            return configured.id  # the operator's model already answers to that name
        try:
            download_model(spec, progress=progress)
        except ValueError as exc:
            raise UpstreamError(str(exc).removeprefix(f"the model of {spec.id}: ")) from None
        with self._changing:
            self.registry.add(reference)
            self._serve_anew()
        return spec.id

    def delete(self, name: str) -> None:
        """Serve the pulled model ``name`` no more (its server stops once its requests have
        ended) and delete its files, unless another model uses them."""
        reference = _pulled_reference(name, self.fleet.catalog)
        used = {
            spec.managed.model
            for spec in self.fleet.catalog.models
            if spec.managed and spec.managed.source != reference.name
        }
        with self._changing:
            files = hub.cached(reference)
            self.registry.remove(reference)
            self._serve_anew()
        if files is not None and files.model not in used:
            hub.remove(files)

    def _serve_anew(self) -> None:
        self.anew.serve(lambda: pulled_anew(self.fleet.catalog, self.settings, self.runtime))


def _reference(name: str) -> HubReference:
    """The hub reference ``name`` writes; a 400 naming ``model`` when it is none."""
    try:
        reference = HubReference.parse(name)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param="model") from None
    if reference is None:
        raise InvalidRequestError(
            f"{name!r} is no model on a hub: this proxy pulls models from Hugging Face, "
            f"named {FORM}",
            param="model",
        )
    return reference


def _pulled_reference(name: str, catalog: Catalog) -> HubReference:
    """The reference of the pulled model ``name`` names; a 404 when it names none, a 400 when
    it names a model the operator configured."""
    spec = catalog.find(name) if name else None
    if spec is catalog.default_model and catalog.catch_all and name not in spec.names:
        spec = None  # a name no model has, which the default model answers
    if spec is None:
        raise ModelNotFoundError(name, [model.id for model in catalog.models if model.pulled])
    if not spec.pulled:
        raise InvalidRequestError(
            f"{name!r} is a model of the proxy's own configuration, not one a client pulled: "
            f"it is deleted from there",
            param="model",
        )
    return HubReference.parse(spec.managed.source)
