"""The application factory: the only place the Flask app and its backend are made."""
from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Callable, Optional

from flask import Flask

from proxy import auth
from proxy.api import admin, errors, glm, observe, openai, web
from proxy.api.jsonbody import OrjsonProvider
from proxy.api.common import ProxyState
from proxy.backends import Backend
from proxy.config import Settings, metrics_folder
from proxy.errors import ShuttingDownError
from proxy.access.build import build_access
from proxy.fleet.build import build_fleet
from proxy.ops.metrics import Metrics


class ProxyApp(Flask):
    """The proxy's Flask app, whose views and hooks are all plain functions."""

    def ensure_sync(self, func: Callable) -> Callable:
        """Each function as it is: Flask would ask ``inspect`` whether it is a coroutine
        function, for every hook and view of every request (:func:`create_app` checks once
        that none is)."""
        return func


def create_app(settings: Optional[Settings] = None, *, backend: Optional[Backend] = None) -> Flask:
    """Create the proxy app; settings default to ``PROXY_*`` env vars, the backend to theirs."""
    settings = settings or Settings.from_env()
    logging.getLogger("proxy").setLevel(settings.log_level.upper())
    app = ProxyApp(__name__, template_folder=str(template_folder()))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_size
    app.json = OrjsonProvider(app)
    metrics = Metrics(metrics_folder()) if settings.metrics == "on" else None
    state = ProxyState(settings, backend or build_fleet(settings, metrics=metrics), metrics)
    if metrics is not None:
        metrics.watch(state.backend)
    app.extensions["proxy"] = state

    access = build_access(settings)
    app.extensions["access"] = access
    observe.init_app(app, state, access)

    @app.before_request
    def refuse_while_stopping() -> None:
        if state.drain.began:  # a request on a kept-alive connection, after SIGTERM
            raise ShuttingDownError("the proxy is shutting down; send the request again")

    auth.init_app(app, access, state.backend.model_label, settings.cors_origins)
    errors.init_app(app)
    app.register_blueprint(openai.bp)
    app.register_blueprint(glm.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(observe.bp)
    _check_all_plain(app)
    return app


def _check_all_plain(app: Flask) -> None:
    """A coroutine function among the views or hooks would be called and never awaited."""
    hooks = [func for funcs in (*app.before_request_funcs.values(),
                                *app.after_request_funcs.values(),
                                *app.teardown_request_funcs.values()) for func in funcs]
    for func in [*app.view_functions.values(), *hooks]:
        if inspect.iscoroutinefunction(func):
            raise TypeError(f"{func.__qualname__} is async: the proxy's views and hooks are "
                            f"plain functions (see ProxyApp.ensure_sync)")


def template_folder() -> Path:
    """The web page templates: inside the package once installed, beside it in a checkout."""
    installed = Path(__file__).parent / "templates"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "templates"
