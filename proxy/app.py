"""The application factory: the only place the Flask app and its router are made."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Callable, Optional

from flask import Flask

from proxy.access.build import build_access, build_outages, build_responses
from proxy.api import (
    admin,
    anthropic,
    audio,
    auth,
    browsers,
    errors,
    glm,
    llamacpp,
    native,
    observe,
    ollama,
    openai,
    pictures,
    rerank,
    responses,
    vertex,
    web,
)
from proxy.api.body import OrjsonProvider
from proxy.api.reload import Reloader
from proxy.api.state import ProxyState, Routes
from proxy.backends.base import Backend
from proxy.batches import messagebatches, views
from proxy.batches.build import build_batches
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.core.errors import ShuttingDownError
from proxy.core.imagefetch import ImageFetcher
from proxy.core.images import Bounds
from proxy.core.router import ModelPulls
from proxy.fleet.build import Models, fleet_of
from proxy.fleet.pulls import Pulls
from proxy.inspector.build import build_capture
from proxy.ops.filewatch import FileWatch
from proxy.ops.history import History
from proxy.ops.metrics import Metrics
from proxy.servers.build import load_catalog
from proxy.tools.manager import ToolServers
from proxy.tools.toolbox import Toolbox

# every API the app serves, each registered the same way (see proxy.api.state)
ROUTES = (
    openai.routes,
    anthropic.routes,
    responses.routes,
    glm.routes,
    ollama.routes,
    llamacpp.routes,
    native.routes,
    rerank.routes,
    audio.routes,
    pictures.routes,
    vertex.routes,
    views.routes,
    messagebatches.routes,
    web.routes,
    admin.routes,
    observe.routes,
)


class ProxyApp(Flask):
    """The proxy's Flask app, whose views and hooks are all plain functions."""

    def ensure_sync(self, func: Callable) -> Callable:
        """Each function as it is: Flask would ask ``inspect`` whether it is a coroutine
        function, for every hook and view of every request (:func:`create_app` checks once
        that none is)."""
        return func


def create_app(
    settings: Settings,
    runtime: Runtime,
    *,
    backend: Optional[Backend] = None,
    pulls: Optional[ModelPulls] = None,
) -> Flask:
    """Create the proxy app from its arguments alone. Requests go to the fleet the settings
    describe, or to a fleet of one on ``backend`` when one is given (and models are pulled
    by ``pulls``, if any)."""
    logging.getLogger("proxy").setLevel(settings.observing.log_level.upper())
    app = ProxyApp(__name__, template_folder=str(template_folder()))
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_size
    app.json = OrjsonProvider(app)
    metrics = Metrics(runtime.metrics_folder) if settings.observing.metrics == "on" else None
    outages = build_outages(settings)
    access = build_access(settings, runtime, outages)
    serve = None  # how a models file read again is served
    if backend is not None:
        router = fleet_of(backend, settings)
    else:
        models = Models(settings, runtime, metrics)
        router = models.make_fleet(load_catalog(settings, runtime))
        pulls = Pulls(router, models, settings, runtime)
        serve = pulls.anew.serve
    history = History(metrics.summed) if metrics is not None else None
    images = ImageFetcher(
        settings.access.image_urls,
        Bounds(settings.limits.max_image_size, settings.limits.max_image_pixels),
    )
    capture = build_capture(settings, runtime, access, lambda: router.catalog)
    access.local_models = router.local_models  # what a local_only key may use, as served now
    tools = Toolbox(  # nothing runs until a tool is first used
        ToolServers(
            lambda: router.catalog.mcp_servers,
            environ=runtime.environ,
            log_folder=settings.servers.log_dir or os.path.join(runtime.cache_dir, "logs"),
            metrics=metrics,
        ),
        web=lambda: router.catalog.web_search,
        metrics=metrics,
    )
    batches = build_batches(app, settings, runtime, access, router)
    state = ProxyState(
        settings,
        router,
        access,
        build_responses(settings, runtime, outages),
        metrics,
        history,
        images,
        pulls=pulls,
        capture=capture,
        reloader=Reloader(settings, runtime, access, router, capture, serve),
        tools=tools,
        live_batches=lambda: [record.progress() for record in batches.batches.live()],
        pictures=batches.files,
        tracing=_tracing(settings, runtime),
    )
    if settings.access.watch == "on" and state.reloader.files and not runtime.supervisor:
        FileWatch(state.reloader.files, state.reloader.reload_logged).start()
    if metrics is not None:
        metrics.watch(router)
        metrics.watch_batches(batches.batches.live)
        state.capture.on_dropped = metrics.exchanges_dropped.inc
        metrics.watch_stores(outages, state.capture)
    app.extensions["proxy"] = state
    observe.init_app(app, state)
    browsers.init_app(app, settings)

    @app.before_request
    def refuse_once_ending() -> None:
        """A request on a kept-alive connection after SIGTERM (or in a gunicorn worker
        started afresh, which closes it after the answer) is served while the streams in
        flight may still finish; once they are being ended, or where the server still takes
        new connections while it drains (granian), it is told to come again."""
        if state.drain.ending or state.drain.refusing:
            raise ShuttingDownError("the proxy is shutting down; send the request again")

    auth.init_app(app, access, settings.access.cors_origins)
    register(app, ROUTES)
    _check_all_plain(app)
    if settings.stores.redis_url or batches.batches.live():
        batches.runner.start()  # every proxy's batches, or those a stopped process left: the
        # app whole first, as the runner asks it at once
    return app


def _tracing(settings: Settings, runtime: Runtime):
    """The tracer ``--otel on`` asks for (``None``: off, and OpenTelemetry never loaded)."""
    observing = settings.observing
    if observing.otel != "on":
        return None
    try:
        from proxy.traces.tracing import Tracing
    except ImportError as exc:
        raise SystemExit(
            f"oai-proxy: --otel on needs OpenTelemetry's SDK ({exc.name} is missing): "
            "pip install 'oai-proxy[otel]'"
        ) from None
    return Tracing.exporting(runtime.environ, observing.otel_key_names == "on")


def register(app: Flask, groups: tuple[Routes, ...]) -> None:
    """Each API's blueprint, its errors' shape, and its place in the page's endpoint list."""
    errors.init_app(
        app,
        {
            group.blueprint.name: group.error_body
            for group in groups
            if group.error_body is not None
        },
    )
    for group in groups:
        app.register_blueprint(group.blueprint)
    app.extensions["routes"] = groups


def _check_all_plain(app: Flask) -> None:
    """A coroutine function among the views or hooks would be called and never awaited."""
    hooks = [
        func
        for funcs in (
            *app.before_request_funcs.values(),
            *app.after_request_funcs.values(),
            *app.teardown_request_funcs.values(),
        )
        for func in funcs
    ]
    for func in [*app.view_functions.values(), *hooks]:
        if inspect.iscoroutinefunction(func):
            raise TypeError(
                f"{func.__qualname__} is async: the proxy's views and hooks are "
                f"plain functions (see ProxyApp.ensure_sync)"
            )


def template_folder() -> Path:
    """The web page templates: inside the package once installed, beside it in a checkout."""
    installed = Path(__file__).parent / "templates"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "templates"
