"""Render every failure as an OpenAI error body; never a traceback."""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from proxy.errors import (AuthenticationError, MethodNotAllowedError, NotFoundError,
                          PayloadTooLargeError, ProxyError)

logger = logging.getLogger(__name__)

HTTP_ERRORS = {404: NotFoundError, 405: MethodNotAllowedError, 413: PayloadTooLargeError}


def init_app(app: Flask) -> None:
    app.register_error_handler(ProxyError, render)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def render(error: ProxyError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.status
    if isinstance(error, AuthenticationError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="oai-proxy"'
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    response.headers.update(error.headers)
    if error.status >= 500:
        logger.warning("%s %s", error.status, error.message)
    return response


def _http_error(exc: HTTPException) -> Response:
    kind = HTTP_ERRORS.get(exc.code)
    if kind is NotFoundError:
        return render(NotFoundError("Unknown route; the API lives under /v1 "
                                    "(e.g. POST /v1/chat/completions)."))
    if kind is MethodNotAllowedError:
        allowed = ", ".join(exc.valid_methods or ())
        response = render(MethodNotAllowedError(f"Method not allowed here; allowed: {allowed}."))
        response.headers["Allow"] = allowed
        return response
    if kind is PayloadTooLargeError:
        return render(PayloadTooLargeError("The request body is larger than this server "
                                           "accepts (--max-body-size)."))
    error = ProxyError(exc.description or exc.name, code=None)
    error.status = exc.code or 500
    error.type = "invalid_request_error" if error.status < 500 else "server_error"
    return render(error)


def _unexpected(exc: Exception) -> Response:
    # the type and message only: a traceback may carry request data into the log
    logger.error("unexpected %s: %s", type(exc).__name__, exc)
    return render(ProxyError("The proxy failed to handle the request; see its log.",
                             code="internal_error"))
