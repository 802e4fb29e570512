"""Browsers: the requests a web page may make the proxy serve, and the headers that keep its
own pages from being framed or sniffed (see :mod:`proxy.inspector.visibility`)."""

from __future__ import annotations

import secrets

from flask import Flask, Response, request

from proxy.api.call import this_call
from proxy.config.settings import Settings
from proxy.core.errors import ForbiddenOriginError
from proxy.inspector.visibility import host_served, origin_allowed

# a page runs the scripts it was rendered with (their nonce) and no other, is never framed,
# and sends no address of its own to anyone
POLICY = (
    "default-src 'self'; script-src 'nonce-{nonce}'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
PAGE_HEADERS = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
KNOWN_HOSTS = 256  # Host headers remembered; any number of others are judged afresh


def init_app(app: Flask, settings: Settings) -> None:
    """Refuse what a page elsewhere makes a browser send; protect the proxy's own pages."""
    bound = settings.serving.hosts
    hosts = frozenset(settings.access.allowed_hosts)
    origins = frozenset(settings.access.cors_origins)
    served: dict = {}  # Host headers already judged: clients send the same one every time

    @app.before_request
    def only_pages_allowed() -> None:
        asked = request._get_current_object()  # read once: each read of ``request`` is a lookup
        host = asked.environ.get("HTTP_HOST", "")
        judged = served.get(host)
        if judged is None:
            if len(served) >= KNOWN_HOSTS:
                served.clear()
            judged = served[host] = host_served(host, bound, hosts)
        if not judged:
            raise ForbiddenOriginError(
                "This proxy listens on a loopback address and serves requests for this "
                "machine's names only; start it with --allowed-hosts NAME to serve another."
            )
        origin = asked.environ.get("HTTP_ORIGIN")
        if origin is not None and not origin_allowed(origin, host, origins):
            raise ForbiddenOriginError(
                "Requests from web pages of other sites are refused; start the proxy with "
                "--cors-origins ORIGIN to allow a site's pages."
            )

    @app.context_processor
    def script_nonce() -> dict:
        call = this_call()
        call.nonce = secrets.token_urlsafe(16)
        return {"csp_nonce": call.nonce}

    @app.after_request
    def protect(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = POLICY.format(
                nonce=this_call().nonce or "none"
            )
            response.headers.update(PAGE_HEADERS)
        return response
