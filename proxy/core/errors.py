"""The proxy's errors, each rendered in the client's own API shape by its dialect.

ProxyError                      500  an expected failure; the base of all below
 ├── InvalidRequestError        400  a field of the request is wrong (``param`` names it)
 │    ├── InvalidJsonError          the body (or a batch's line) is not JSON at all
 │    ├── UntranslatableError       a block no model of another API can read
 │    └── ContextLengthError        the prompt does not fit the model's context
 ├── AuthenticationError        401  missing or wrong API key
 ├── PermissionDeniedError      403  the key may not use the model
 │    └── ToolNotAllowedError       nor have a hosted tool run
 ├── ForbiddenOriginError       403  a web page's request the proxy does not serve
 ├── NotFoundError              404  unknown route
 │    └── ModelNotFoundError        the request names a model this proxy does not serve
 ├── MethodNotAllowedError      405
 ├── ConflictError              409  what the request names forbids it now (a file a batch reads)
 ├── RequestTimeoutError        408  the client stopped sending its request half-way
 ├── PayloadTooLargeError       413  body over the configured limit
 ├── RateLimitError             429  the key used up its minute
 │    ├── RequestsLimitError        of requests
 │    ├── TokensLimitError          of tokens
 │    └── QuotaExceededError        or its tokens of the day or the month
 ├── ClientGoneError            499  the client went away before its answer began
 ├── HTTPError                  4xx/5xx  any other status the web layer answers
 ├── NotImplementedByBackendError 501  the backend cannot do this
 ├── ShuttingDownError          503  the proxy is stopping
 ├── StoreUnavailableError      503  a store of the proxy's own (Redis, a full disk) is down
 ├── ToolError                       any failure of a tool the gateway runs (MCP, web search)
 │    ├── ToolNotFoundError     400  no such MCP server, or no such tool on it
 │    ├── ToolArgumentsError    400  the arguments do not fit the tool's input schema
 │    └── ToolServerError       502  its server (MCP, search) failed the call: crashed, or garbage
 │         ├── ToolServerUnavailableError 503  it cannot be started or reached
 │         └── ToolTimeoutError 504  it did not answer within the call's time bound
 └── UpstreamError              502  the upstream answered with an error or garbage
      ├── UpstreamUnavailableError 503  the upstream cannot be reached, or is busy
      │    ├── SlotUnavailableError  the server had no free slot (it goes back to the queue)
      │    ├── QueueFullError        too many requests already wait for a slot
      │    └── QueueTimeoutError     no slot came free in time
      └── UpstreamTimeoutError     504  the upstream did not answer in time
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

# An upstream that could not be reached at all: the request never got there, and may be
# sent again (to the same server once it is back, or to another replica).
UNREACHABLE = "upstream_unreachable"


class ProxyError(Exception):
    """An expected failure with an HTTP status and an error type (OpenAI's names).

    ``message`` is for the client; ``detail`` for the log only (what no client may see: the
    address of the server behind the proxy, a path on its disk).
    """

    status = 500
    type = "server_error"
    code: str | None = None
    # what the parts of the answer made before it failed spent (a tool loop's finished
    # turns, :class:`~proxy.core.answers.Spent`): charged all the same
    spent: tuple = ()
    # the engine's own fields beside its error (llama-server's ``n_ctx``), written where the
    # client's API has room for them, as an answer's extras are
    extras: dict = {}

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
        detail: str | None = None,
        headers: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.detail = detail
        self.headers = headers or {}  # sent with the error (a rate limit's x-ratelimit-*)

    def __str__(self) -> str:
        """What the log says of it: the message, and the detail behind it."""
        return f"{self.message} [{self.detail}]" if self.detail else self.message


class InvalidRequestError(ProxyError):
    """A field of the request is wrong; ``param`` names it."""

    status = 400
    type = "invalid_request_error"


class InvalidJsonError(InvalidRequestError):
    """A body (or a batch's line) that is not JSON at all."""


class UntranslatableError(InvalidRequestError):
    """A part of the request the proxy cannot put in a model's terms (a block a text model
    cannot read): a server that speaks the client's own API takes the body as it came."""


class ContextLengthError(InvalidRequestError):
    """The prompt takes more tokens than the model's context holds; each dialect words it as
    its own API does, so that agents compact their history and retry."""

    code = "context_length_exceeded"

    def __init__(
        self,
        prompt_tokens: Optional[int],
        limit: Optional[int],
        *,
        at_least: bool = False,
        engine: bool = False,
    ) -> None:
        """``at_least``: ``prompt_tokens`` is a bound the prompt is known to exceed, found
        without tokenizing it; ``None``: a count the upstream did not tell. ``engine``:
        llama-server told it in its own words, which its clients read beside OpenAI's code
        (its ``exceed_context_size_error``, with ``n_prompt_tokens`` and ``n_ctx``)."""
        counted = f"at least {prompt_tokens}" if at_least else str(prompt_tokens)
        context = (
            f"This model's maximum context length is {limit} tokens. However, "
            if limit is not None
            else "This model's context is too short for this request: "
        )
        resulted = (
            f"your messages resulted in {counted} tokens"
            if prompt_tokens is not None
            else "your messages resulted in more tokens than it holds"
        )
        # llama-server's own words too, which its clients look for
        told = ": the request exceeds the available context size" if engine else ""
        super().__init__(
            f"{context}{resulted}{told}. Please reduce the length of the messages.",
            param="messages",
        )
        self.prompt_tokens = prompt_tokens
        self.limit = limit
        if engine:
            self.type = "exceed_context_size_error"
            self.extras = {"n_prompt_tokens": prompt_tokens, "n_ctx": limit}


class AuthenticationError(ProxyError):
    """No API key, or one the proxy does not know."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(ProxyError):
    """The key is known but may not use the model it asked for."""

    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class ToolNotAllowedError(PermissionDeniedError):
    """The key may not have a hosted tool run (its code also tells a run refused for it)."""

    code = "tool_not_allowed"


class ForbiddenOriginError(ProxyError):
    """A browser's request from a page, or for a host name, that the proxy does not serve."""

    status = 403
    type = "permission_error"
    code = "origin_not_allowed"


class RateLimitError(ProxyError):
    """The key used up its requests or tokens of the minute, or a budget."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class RequestsLimitError(RateLimitError):
    """The key used up its requests of the minute."""


class TokensLimitError(RateLimitError):
    """The key used up its tokens of the minute."""

    type = "tokens"


class QuotaExceededError(RateLimitError):
    """The key spent its tokens of the day or the month (OpenAI's words for a spent quota)."""

    type = "insufficient_quota"
    code = "insufficient_quota"


class NotFoundError(ProxyError):
    """No route answers this path."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    """The request names a model this proxy does not serve, or one its key may not know of;
    ``known``: the ids the message lists, narrowed to the caller's with :meth:`among` (a
    key that names a model it may not see gets the same words as for one that is not)."""

    code = "model_not_found"

    def __init__(self, model: str | None, known: Iterable[str] = ()) -> None:
        self.model = model
        self.known = tuple(sorted(set(known)))
        named = f"The model {model!r}" if model else "The default model"
        listed = (
            f"; the models are {', '.join(self.known)} (GET /v1/models lists their aliases too)"
            if self.known
            else ""
        )
        super().__init__(f"{named} does not exist here{listed}", param="model")

    def among(self, allowed: Callable[[str], bool]) -> "ModelNotFoundError":
        """The same error, listing only the ids ``allowed`` says the caller may use."""
        return ModelNotFoundError(self.model, [known for known in self.known if allowed(known)])


class ConflictError(ProxyError):
    """The request asks for what the state of something it names forbids now (a file a
    batch under way still reads)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class MethodNotAllowedError(ProxyError):
    """The route exists, for other methods."""

    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeoutError(ProxyError):
    """The client stopped sending its request half-way."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLargeError(ProxyError):
    """The body is larger than ``--max-body-size``."""

    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class HTTPError(ProxyError):
    """Any other HTTP error the web layer raises, with its own status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.type = "invalid_request_error" if status < 500 else "server_error"


class NotImplementedByBackendError(ProxyError):
    """The backend serving the model cannot do what was asked."""

    status = 501
    type = "not_supported_error"
    code = "not_supported"


class ClientGoneError(ProxyError):
    """The client went away before its answer began (nothing is sent)."""

    status = 499
    type = "client_gone"
    code = "client_gone"


class ShuttingDownError(ProxyError):
    """The proxy is stopping and takes no new requests."""

    status = 503
    type = "unavailable_error"
    code = "shutting_down"


class StoreUnavailableError(ProxyError):
    """A store of the proxy's own cannot be used now (Redis is gone, the disk is full): the
    model may be serving well, so the code never says the upstream is."""

    status = 503
    type = "unavailable_error"
    code = "store_unavailable"


class UpstreamError(ProxyError):
    """The upstream answered with an error or with something unreadable."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class UpstreamUnavailableError(UpstreamError):
    """The upstream cannot be reached, or has no room now."""

    status = 503
    code = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer in time."""

    status = 504
    code = "upstream_timeout"


class SlotUnavailableError(UpstreamUnavailableError):
    """The server had no free slot; the request goes back in the queue."""

    code = "no_free_slot"


class QueueFullError(UpstreamUnavailableError):
    """Too many requests already wait for a slot."""

    code = "queue_full"


class QueueTimeoutError(UpstreamUnavailableError):
    """No slot came free within ``--queue-timeout``."""

    code = "queue_timeout"


class ToolError(ProxyError):
    """Any failure of a tool the gateway runs for a model: a tool loop catches this one
    class, and the status of the error it caught says whose doing it was."""

    code = "tool_error"


class ToolNotFoundError(ToolError, InvalidRequestError):
    """The request names an MCP server the operator did not declare, or a tool its server
    does not list."""

    code = "tool_not_found"


class ToolArgumentsError(ToolError, InvalidRequestError):
    """The arguments of a tool call do not fit the tool's input schema; ``param`` names the
    field (``arguments.path``)."""

    code = "invalid_tool_arguments"


class ToolServerError(ToolError):
    """The MCP server failed the call: its process died, its connection broke, or it
    answered what the protocol does not allow; or the search service the web tools ask
    answered an error or what is not its API's."""

    status = 502
    code = "tool_server_error"


class ToolServerUnavailableError(ToolServerError):
    """The MCP server, or the search service, cannot be started or reached now."""

    status = 503
    code = "tool_server_unavailable"


class ToolTimeoutError(ToolServerError):
    """The MCP server, or the search service, did not answer within the call's time
    bound."""

    status = 504
    code = "tool_timeout"
