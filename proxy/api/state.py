"""What the views share: the app's state, the router they send every request to, and what
each API module gives the app in one value: its blueprint, what the page says of it and the
shape of its errors. ``app.py`` registers every module's value the same way, so adding a
client API is one module and one line there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from flask import Blueprint, current_app
from werkzeug.routing import Rule

from proxy.access.gate import Access
from proxy.access.stored import StoredResponses
from proxy.api.reload import Reloader
from proxy.config.settings import Settings
from proxy.core.draining import Drain
from proxy.core.errors import ProxyError
from proxy.core.imagefetch import ImageFetcher
from proxy.core.meanwhile import Helpers
from proxy.core.pictures import PictureFiles
from proxy.core.router import ModelPulls, Router
from proxy.dialects.dialect import Limits
from proxy.inspector.capture import Capture
from proxy.ops.history import History
from proxy.ops.metrics import Metrics
from proxy.tools.toolbox import Toolbox

if TYPE_CHECKING:  # OpenTelemetry's SDK is loaded only with --otel on
    from proxy.traces.tracing import Tracing


@dataclass(frozen=True)
class ProxyState:
    settings: Settings
    router: Router
    access: Access
    responses: StoredResponses  # the Responses API's store
    metrics: Optional[Metrics]  # None: --metrics off
    history: Optional[History]  # the metrics' last minutes, for the fleet page; None: off
    images: ImageFetcher  # fetches images given by URL, as the operator allows
    drain: Drain = field(default_factory=Drain)
    helpers: Helpers = field(default_factory=Helpers)  # threads streams wait in (pings meanwhile)
    pulls: Optional[ModelPulls] = None  # models clients pull and delete; None: a given backend
    capture: Optional[Capture] = None  # the exchanges kept for the inspector
    reloader: Optional[Reloader] = None  # the keys and models files read again
    tools: Optional[Toolbox] = None  # the servers of tools the models file declares
    live_batches: Callable[[], list] = list  # how far each batch under way has come, for pages
    pictures: Optional[PictureFiles] = None  # where pictures answered with links are kept
    tracing: Optional["Tracing"] = None  # each request's trace made and exported; None: off

    @property
    def limits(self) -> Limits:
        return limits_of(self.settings)


def limits_of(settings: Settings) -> Limits:
    """What the operator lets one request ask for, as the dialects read it."""
    limits = settings.limits
    return Limits(
        limits.max_choices,
        limits.max_batch,
        limits.max_image_size,
        limits.max_image_pixels,
        image_urls=settings.access.image_urls != "off",
        max_tools=limits.max_tools,
        max_schema_size=limits.max_schema_size,
        max_body_size=limits.max_body_size,
        max_containers=limits.max_containers,
        max_nesting=limits.max_nesting,
        max_audio_size=limits.max_audio_size,
    )


def get_state() -> ProxyState:
    return current_app.extensions["proxy"]


SHOWN_METHODS = ("GET", "POST", "DELETE")  # HEAD and OPTIONS come with them


@dataclass(frozen=True)
class Routes:
    """One module's routes as the app registers them."""

    blueprint: Blueprint
    summary: str  # what the page's endpoint list says of them
    error_body: Optional[Callable[[ProxyError], dict]] = None  # None: OpenAI's shape


def endpoints(rules: Iterable[Rule], groups: Iterable[Routes]) -> list:
    """Each group's summary and its routes (``METHOD path``, in the URL map's order), for
    the page: a path served with and without ``/v1`` is listed once, by its ``/v1`` form."""
    rules = list(rules)
    listed = []
    for group in groups:
        name = group.blueprint.name
        own = [rule for rule in rules if rule.endpoint.partition(".")[0] == name]
        paths = {rule.rule for rule in own}
        shown = []
        for rule in own:
            if "/v1" + rule.rule in paths:
                continue  # the same view at /v1<path> stands for it
            methods = "/".join(m for m in SHOWN_METHODS if m in (rule.methods or ()))
            if f"{methods} {rule.rule}" not in shown:
                shown.append(f"{methods} {rule.rule}")
        listed.append((group.summary, shown))
    return listed
