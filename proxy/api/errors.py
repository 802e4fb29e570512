"""Render every failure in the client's own API shape; never a traceback."""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Optional

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from proxy.core.errors import (
    AuthenticationError,
    HTTPError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    PayloadTooLargeError,
    ProxyError,
    StoreUnavailableError,
)
from proxy.dialects.openai import answer as openai
from proxy.logs import raised_at

logger = logging.getLogger(__name__)

HTTP_ERRORS = {404: NotFoundError, 405: MethodNotAllowedError, 413: PayloadTooLargeError}
Shape = Callable[[ProxyError], dict]


def init_app(app: Flask, shapes: Mapping[str, Shape] = {}) -> None:
    """``shapes``: the error body of each blueprint's API, by blueprint name (OpenAI's for
    any other route)."""
    app.extensions["error_shapes"] = dict(shapes)
    for kind in (ProxyError, HTTPException, Exception):
        app.register_error_handler(kind, lambda exc: error_response(exc, request.blueprint))


def error_response(exc: Exception, api: Optional[str]) -> Response:
    """``exc`` as the answer to a request of ``api`` (its blueprint's name), in that API's
    shape: a failure the proxy did not foresee is logged, and said to be one."""
    if isinstance(exc, ProxyError):
        error = exc
    elif isinstance(exc, HTTPException):
        error = _http_error(exc)
    else:
        error = _unexpected(exc)
    shape = current_app.extensions["error_shapes"].get(api or "", openai.error_body)
    error = _for_caller(error)
    response = jsonify(shape(error))
    response.status_code = error.status
    if isinstance(error, AuthenticationError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="oai-proxy"'
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    response.headers.update(error.headers)
    if isinstance(error, StoreUnavailableError):  # its outage is logged once, not each refusal
        logger.info("%s %s", error.status, error)
    elif error.status >= 500:
        logger.warning("%s %s", error.status, error)
    return response


def _for_caller(error: ProxyError) -> ProxyError:
    """A missing model named in the words its caller may read: only the ids its key may
    use (a key limited to some models never learns the others' ids)."""
    call = g.get("call")
    key = call.key if call is not None else None
    if isinstance(error, ModelNotFoundError) and key is not None:
        return error.among(key.may_use)
    return error


def _http_error(exc: HTTPException) -> ProxyError:
    kind = HTTP_ERRORS.get(exc.code)
    if kind is NotFoundError:
        return NotFoundError(
            "Unknown route; the API lives under /v1 (e.g. POST /v1/chat/completions)."
        )
    if kind is MethodNotAllowedError:
        allowed = ", ".join(exc.valid_methods or ())
        return MethodNotAllowedError(
            f"Method not allowed here; allowed: {allowed}.", headers={"Allow": allowed}
        )
    if kind is PayloadTooLargeError:
        return PayloadTooLargeError(
            "The request body is larger than this server accepts (--max-body-size)."
        )
    return HTTPError(exc.description or exc.name, exc.code or 500)


def _unexpected(exc: Exception) -> ProxyError:
    logger.error("unexpected %s at %s: %s", type(exc).__name__, raised_at(exc), exc)
    return ProxyError("The proxy failed to handle the request; see its log.", code="internal_error")
