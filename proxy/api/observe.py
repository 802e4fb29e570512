"""Watching the proxy work: every request measured and counted, and ``GET /metrics``.

Each answer carries ``x-oai-proxy-overhead-ms``: the proxy's own time, upstream waits left
out; and ``Server-Timing``: that, the waits for a slot and on the upstream, the first token
and the whole (:func:`~proxy.ops.measure.server_timing`). A streamed answer's headers can
only count up to its first event; the metric and the inspector count the whole stream.

An API request's exchange is kept for the inspector when capture asks for it
(:mod:`proxy.inspector.capture`): its body as read, its answer as sent, the facts measured
here."""

from __future__ import annotations

import hashlib
import logging
from time import perf_counter, time
from typing import NamedTuple, Optional

from flask import Blueprint, Flask, Response, g, has_request_context, request

from proxy.api.auth import require_key
from proxy.api.call import UNREAD, Call
from proxy.api.requestmodel import request_model_if_read
from proxy.api.state import ProxyState, Routes, get_state
from proxy.core.errors import NotFoundError, PermissionDeniedError
from proxy.core.sse import EventStream
from proxy.inspector import capture as exchanges
from proxy.ops.measure import PRICED, Measure, server_timing
from proxy.ops.modelside import ModelSide
from proxy.traces import conventions

bp = Blueprint("observe", __name__)
NOTHING = (0,) * (3 + len(PRICED))  # the counts of a request that took nothing
routes = Routes(bp, "Prometheus metrics")

logger = logging.getLogger(__name__)
access_log = logging.getLogger("proxy.access")
OVERHEAD_HEADER = "x-oai-proxy-overhead-ms"
TIMING_HEADER = "Server-Timing"
UNMATCHED = "unmatched"  # the route of a request no rule matched
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"


CLOSED = (
    "/metrics names every key, so with keys on it needs a key of its own: start the "
    "proxy with --metrics-key (or --admin-key) and scrape with it"
)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format, behind the keys :func:`scrape_keys` names."""
    state = get_state()
    if state.metrics is None:
        raise NotFoundError("Metrics are off; start the proxy with --metrics on.")
    access = state.settings.access
    keys = scrape_keys(access.metrics_key, access.admin_key, state.access.required)
    if keys == ():
        raise PermissionDeniedError(CLOSED, code="metrics_key_needed")
    if keys is not None:
        require_key(request.environ, [key.encode("utf-8") for key in keys])
    return Response(state.metrics.scrape(), mimetype=None, content_type=EXPOSITION)


def scrape_keys(metrics_key: str, admin_key: str, keys_required: bool) -> Optional[tuple]:
    """The keys that open ``/metrics``: ``None`` when it is public, ``()`` when none can.

    Its counters are labelled with each key's name, so with keys on it is never public: the
    metrics key or the admin key opens it, and with neither it stays closed (a 403 naming
    ``--metrics-key``; the proxy warns at start-up). Without keys it is public unless a
    metrics key is set, as it always was.
    """
    keys = tuple(key for key in (metrics_key, admin_key) if key)
    if metrics_key or keys_required:
        return keys
    return None


class Arrival(NamedTuple):
    """How a request came: its ``route`` (the rule that matched it, :data:`UNMATCHED` where
    none did), the ``api`` whose blueprint answered it, its ``method`` and ``path``, the
    client's ``address`` (``None``: a batch's line, which came over no connection) and its
    body's ``length``."""

    route: str
    api: str
    method: str
    path: str
    address: Optional[str]
    length: int


def init_app(app: Flask, state: ProxyState) -> None:
    """Measure every request, from before the key check to the last byte it makes (see
    :func:`finish`)."""
    capture = state.capture
    keys = state.settings.access
    if (
        state.metrics is not None
        and scrape_keys(keys.metrics_key, keys.admin_key, state.access.required) == ()
    ):
        logger.warning(CLOSED)

    tracing = state.tracing

    @app.before_request
    def begin() -> None:  # the first hook: every answer, refusals too, is measured
        # whose its exchange is, the model's side of it kept, is known once its key is
        side = ModelSide() if capture is not None and capture.armed() else None
        environ = request.environ
        measure, trace = Measure(), None
        if tracing is not None:
            asked = request._get_current_object()
            rule = asked.url_rule
            trace = tracing.begin(
                environ, asked.method, rule.rule if rule is not None else None, asked.path
            )
        g.call = Call(measure, side, environ=environ, trace=trace)

    @app.after_request
    def end(response: Response) -> Response:
        asked = request._get_current_object()  # read once: each read is a lookup
        rule = asked.url_rule
        environ = asked.environ  # read as it is: werkzeug's headers raise for one not sent
        length = environ.get("CONTENT_LENGTH", "")
        arrival = Arrival(rule.rule if rule is not None else UNMATCHED, asked.blueprint or "",
                          asked.method, asked.path, environ.get("REMOTE_ADDR"),
                          int(length) if length.isascii() and length.isdigit() else 0)  # fmt: skip
        return finish(state, g.call, response, arrival)


def finish(state: ProxyState, call: Call, response: Response, arrival: Arrival) -> Response:
    """End ``call``, answered by ``response``: count an API request's usage against its key,
    let the history look at the counters, keep its exchange where capture asks for it, and
    log a line for it (``--access-log``), once its answer is sent (a stream's, once it
    ends); the response, its overhead said."""
    figures, history, access, capture = state.metrics, state.history, state.access, state.capture
    spent = call.measure
    spent.pause()
    seconds = perf_counter() - spent.began  # so far: a stream's, up to its first event
    response.headers[OVERHEAD_HEADER] = f"{spent.overhead * 1000:.3f}"
    response.headers[TIMING_HEADER] = server_timing(spent, seconds)
    route = arrival.route
    named = request_model_if_read()
    asked = (named if named is not None else state.router.resolve(None)).id
    # usage, metrics and spend count the models that answered (a fallback, it may be)
    model = next((served for served in spent.tokens if served), asked)
    status = response.status_code
    api = call.checked  # an API route, not a page or a probe
    key = call.key
    side = call.side
    trace = call.trace
    logged = state.settings.observing.access_log == "on"
    line = (arrival.address or "-", arrival.method, arrival.path) if logged else None
    # every stream is an EventStream (api/serve.py); werkzeug's ``is_streamed`` asks a
    # stream its length and catches the TypeError
    stream = response.response if type(response.response) is EventStream else None
    kept = None
    if api and route != UNMATCHED and capture is not None and capture.wanted(key, model):
        kept = Exchange(arrival, call.body, response, stream is not None)

    charged = []

    def charge() -> None:
        """The answer's charge, each model's tokens at its price (its service tier's where
        it served one priced apart), kept before its client sees its end (a proxy killed
        right after loses none of it) and written to the store once the answer is sent
        (:func:`done`)."""
        if api and not charged:
            charged.append(True)
            hold = call.hold  # what it held of its key's budgets
            once = call.charge
            prices = state.router.prices()
            for served, counts in (spent.tokens or {"": NOTHING}).items():
                tier, size = spent.tiers.get(served, ""), spent.sizes.get(served, "")
                served = served or asked
                prompt, completion, cached, *priced = counts
                access.charge(key, served, status, prompt, completion, cached,
                              prices.get(served), hold,
                              f"{once}:{served}:{status}" if once else "",
                              tier=tier, size=size,
                              **dict(zip(PRICED, priced, strict=True)))  # fmt: skip

    def done() -> None:
        charge()  # first, whatever fails after it; a stream its client left: what was made
        if trace is None:
            access.settle()
        else:
            with trace.span("charge"):
                access.settle()
            answered = model if status < 400 else ""
            trace.end(traced(status, asked, answered, key, state), status >= 500)
        seconds = perf_counter() - spent.began
        name = key.name if key else ""
        if kept is not None:
            capture.submit(kept.record(key, model, status, seconds, spent, side), kept.size)
        if figures is not None:
            figures.answered(route, model, status, seconds, spent, name)
        if history is not None:
            history.look()
        if line is not None:
            access_log.info(
                "%s %s %s %d %.3fs model=%s key=%s", *line, status, seconds, model, name or "-"
            )

    if stream is not None:
        stream.on_end, stream.on_close = charge, done
        if kept is not None:
            stream.tee = kept.keep
    else:
        if kept is not None:  # kept before it is sent: a listing its client asks next has it
            capture.submit(kept.record(key, model, status, seconds, spent, side), kept.size)
            kept = None
        charge()
        response.call_on_close(done)
    return response


def traced(status: int, asked: str, answered: str, key, state: ProxyState) -> dict:
    """What the request's span tells once it is answered (its key's name where the operator
    allows it)."""
    named = key.name if key is not None and state.tracing.key_names else None
    return conventions.ended(status, asked, answered, named)


class Exchange:
    """One exchange as the inspector keeps it: the request's body as its client sent it, and
    the answer's (a stream's bytes as they go, the first :data:`exchanges.MAX_PART` of them)."""

    def __init__(self, arrival: Arrival, body, response: Response, streamed: bool) -> None:
        """``body``: the request's JSON, as the view read it (:data:`call.UNREAD`: it did
        not, or could not)."""
        self.api = arrival.api
        self.method, self.path = arrival.method, arrival.path
        self.at = time()
        self.body = body
        sent = request.files.items(multi=True) if has_request_context() else ()  # a batch's line
        self.files = [_file(name, upload) for name, upload in sent]
        self.read = arrival.length
        self.streamed = streamed
        self.kind = response.mimetype or ""
        self.media = (hashlib.sha256(), [0]) if exchanges.binary(self.kind) else None
        self.answer = bytearray()
        self.cut = False  # a stream went on past what is kept of it
        if not streamed and self.media is not None:
            self.keep(response.get_data())
        elif not streamed:
            self.answer = response.get_data()

    def keep(self, piece: bytes) -> None:
        """A piece of a streamed answer as it goes, kept as well (media: counted and hashed)."""
        if self.media is not None:
            self.media[0].update(piece)
            self.media[1][0] += len(piece)
            return
        room = exchanges.MAX_PART - len(self.answer)
        if len(piece) > room:
            self.cut = True
        self.answer += piece[:room]

    @property
    def size(self) -> int:
        """About how many bytes the exchange holds until it is written: its body as read, in
        the request, the upstream body and the prompt; its answer, and the text beneath it."""
        return 3 * self.read + 2 * len(self.answer)

    def record(self, key, model: str, status: int, seconds: float, spent, side) -> dict:
        """What is kept, but for the model's side (``side``): the writer gathers that, as it
        may ask the server how it rendered the prompt. ``key``: whose (``None``: no keys)."""
        request, request_cut = (
            (None, False) if self.body is UNREAD else exchanges.kept_json(self.body)
        )
        if self.files and isinstance(request, dict):
            request = {**request, "files": self.files}
        if self.media is not None:
            digest, (size,) = self.media
            answer, answer_cut = exchanges.told(self.kind, size, digest.hexdigest()), False
        else:
            answer, answer_cut = exchanges.kept(bytes(self.answer))
        first = spent.first_token
        generating = seconds - first if first is not None else seconds
        return {
            "at": self.at,
            "key": key.name if key is not None else "",
            "owner": key.owner if key is not None else "",
            "model": model,
            "api": self.api,
            "method": self.method,
            "path": self.path,
            "status": status,
            "streamed": self.streamed,
            "seconds": round(seconds, 6),
            "overhead_ms": round(spent.overhead * 1000, 3),
            "first_token_ms": None if first is None else round(first * 1000, 3),
            "queued_ms": round(spent.queued * 1000, 3),
            "upstream_ms": round(spent.upstream * 1000, 3),
            "prompt_tokens": spent.prompt_tokens,
            "cached_tokens": spent.cached_tokens,
            "evaluated_tokens": max(spent.prompt_tokens - spent.cached_tokens, 0),
            "completion_tokens": spent.completion_tokens,
            "tokens_per_second": (
                round(spent.completion_tokens / generating, 2) if generating else None
            ),
            "side": side,
            "request": request,
            "request_cut": request_cut,
            "answer": answer,
            "answer_cut": answer_cut or self.cut,
        }


def _file(name: str, sent) -> dict:
    """A form's file as the inspector keeps it: its field, name, type, size and SHA-256."""
    digest, size = hashlib.sha256(), 0
    sent.stream.seek(0)
    while piece := sent.stream.read(64 * 1024):
        digest.update(piece)
        size += len(piece)
    kind = sent.mimetype or "application/octet-stream"
    return {"field": name, "filename": sent.filename or "",
            "content": exchanges.told(kind, size, digest.hexdigest())}  # fmt: skip
