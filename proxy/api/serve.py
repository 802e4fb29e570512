"""The one way every generation route answers: parse in the client's dialect, run on the
core, render whole or as a stream.

A stream is committed only once its first write is ready, so that a failure before any byte
is an HTTP error in the client's dialect, not a broken stream.

A request waiting for a free slot must leave the queue as soon as its client hangs up, or
the queue fills with requests nobody will read: its caller probes whether the client has
gone, before any byte is sent. Both servers let the socket be reached: gunicorn hands it
over, and waitress's own probe is a method of the connection that owns it. The kernel is
asked about the socket directly, because waitress notices a hang-up only while it reads the
connection, and reading ahead of a running request costs its event loop a spin on every
answer.
"""

from __future__ import annotations

import select
import socket
from typing import Callable, Iterator, Optional, Sequence

from flask import Blueprint, Response, jsonify

from proxy.access import holds
from proxy.api import hosted
from proxy.api.auth import PRIORITY
from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.requestmodel import answer_name, request_model
from proxy.api.state import get_state
from proxy.core import generation
from proxy.core.answers import COUNTED, ESTIMATED, Completion, Embeddings, Served, Usage
from proxy.core.caller import Caller, anything
from proxy.core.party import LOWEST
from proxy.core.sse import HEADERS, EventStream, Framing
from proxy.dialects.dialect import Ask, Dialect, named

SERVED_HEADER = "x-oai-proxy-served-model"  # the model that answered, when a fallback did
# how an answer's usage was had where its engine told none: ``counted`` or ``estimated``
USAGE_HEADER = "x-oai-proxy-usage"
# the request's fields the model's filters (the operator's) left out, or sent with other values
LEFT_OUT_FIELDS_HEADER = "x-oai-proxy-left-out-fields"
REPLACED_FIELDS_HEADER = "x-oai-proxy-replaced-fields"
LEFT_OUT_TOOLS_HEADER = "x-oai-proxy-left-out-tools"  # tools not offered to the model


def versioned(bp: Blueprint, path: str, method: str = "POST") -> Callable:
    """Route a view at ``/v1<path>`` and at ``<path>``: clients give the base URL with or
    without ``/v1``."""

    def register(view: Callable) -> Callable:
        bp.route("/v1" + path, methods=[method])(view)
        return bp.route(path, methods=[method])(view)

    return register


def asked(dialect: Dialect, **options) -> Ask:
    """The request's JSON body, parsed by ``dialect`` within the operator's limits, each of
    its requests served for the :func:`caller`."""
    ask = dialect.parse(read_json(), get_state().limits, **options)
    served_for = caller()
    return ask.amended(lambda generation_request: generation_request.served_for(served_for))


def caller() -> Caller:
    """Who the request is served for, made once: its key's party, at the priority its body
    asks for where it does (LiteLLM's field), else its header's, its measure, the model's
    side of its exchange where capture keeps one, a probe of whether its client is still
    there, and the model it names, resolved. A batch's line waits last, whatever it asks."""
    call = this_call()
    if call.caller is None:
        key, body = call.key, call.body
        environ = call.environ or {}  # a batch's line came over no connection
        if call.lowest:
            asked = LOWEST
        elif type(body) is dict and "priority" in body:
            asked = body["priority"]
        else:
            asked = environ.get(PRIORITY)
        call.caller = Caller(
            get_state().access.party(key, asked),
            call.measure,
            client_gone_probe(environ),
            key.may_use if key is not None and key.restricted else anything,
            call.side,
            key.owner if key is not None else "",
            request_model(),
            call.trace,
        )
    return call.caller


def embed_texts(texts: Sequence[str], model: Optional[str]) -> Embeddings:
    """The vectors of ``texts`` from the model ``model`` names, for the :func:`caller`; the
    tokens they took counted against its key (its usage and budgets), as a generation's are."""
    hold_budget(lambda: (holds.texts_bound(texts, 2), 0))  # a text may gain two tokens: its ends
    result = get_state().router.embed(texts, model, caller())
    this_call().measure.add_tokens(result.prompt_tokens, 0, 0)
    return result


def hold_budget(bounds: Callable[[], tuple], size: str = "", **counts: int) -> None:
    """Hold what the request may spend of its key's budgets (``bounds()``: its ``(prompt,
    output)`` tokens at most, the output ``None`` when unbounded; read only for a key with
    budgets, as they walk the request's text; ``counts``: the media it makes at most, priced
    by the unit) at the price of the model it names (its service tier's, as the body asks;
    its pictures' ``size``'s, where the price names sizes), until its charge lets it go
    (:mod:`proxy.api.observe`); a 429 before any work when it does not fit."""
    call = this_call()
    if call.budget is not None:
        state = get_state()
        price = state.router.held_price(request_model(), call.body)
        if price is not None and size:
            price = price.sized(size)
        call.hold = state.access.hold(call.budget, price, *bounds(), counts)


def serve(
    dialect: Dialect,
    ask: Ask,
    kept: Optional[Callable[[dict], None]] = None,
    id: Optional[str] = None,
) -> Response:
    """Answer ``ask`` in ``dialect``: its requests run on the router (or the tool loop
    around it), the answer whole or streamed as the client asked. ``kept`` is told the
    whole answer's body (a stream's, before its last write), for answers the proxy keeps;
    ``id``: the answer's, where the caller made it first (a new one otherwise).

    What the answer says of itself (who served it, what its model's filters changed) is
    read from it: a stream's before its first byte, as its headers must be."""
    ask, generator = hosted.generator(ask)
    router = get_state().router
    hold_budget(
        lambda: holds.bounds(ask.requests, ask.n, lambda: router.longest_answer(request_model()))
    )
    ask = ask.amended(get_state().images.fetch)
    model = answer_name()
    id = id or dialect.new_id()
    if ask.stream:
        renderer = dialect.stream(ask, id, model)
        renderer.kept = kept
        events = generation.stream(
            generator, ask.requests, ask.n, patient=dialect.patient, helpers=get_state().helpers
        )
        response = event_response(events, renderer)
        served, passed = renderer.served, renderer.passed
    else:
        completions = generation.complete(generator, ask.requests, ask.n)
        last = [c.served for c in completions if c.served is not None]
        instead = next((told.model for told in last if told.instead), model)
        served = makers(completions)
        body = dialect.render(ask, id, instead, completions)
        if kept is not None:
            kept(body)
        response = jsonify(body)
        passed = completions[0].verbatim is not None
        how = sum((c.usage for c in completions), Usage()).how
        if how in (COUNTED, ESTIMATED):
            response.headers[USAGE_HEADER] = how
    if not passed:  # an answer its upstream wrote had nothing of its request left out
        response.headers.update(left_out_headers(dialect, ask))
    tell(response.headers, served)
    return response


def left_out_headers(dialect: Dialect, ask: Ask) -> dict:
    """The headers naming what of ``ask`` its answer did not read: the dialect's own, and
    the tools its model was not offered."""
    headers = dialect.headers(ask)
    if ask.not_offered:
        headers[LEFT_OUT_TOOLS_HEADER] = named(ask.not_offered)
    return headers


def makers(completions: Sequence[Completion]) -> list:
    """Who made each part of whole answers, in order: each choice, and each turn of a tool
    loop (its parts, where it was made in parts)."""
    return [
        told
        for completion in completions
        for told in ([part.served for part in completion.spent] or [completion.served])
        if told is not None
    ]


def tell(headers, served: Sequence[Served]) -> None:
    """The headers saying who ``served`` the answer (where another model than the one asked
    for made any part of it, each model that did, in order) and what the models' filters
    changed of its request."""
    if any(each.instead for each in served):
        headers[SERVED_HEADER] = ", ".join(dict.fromkeys(e.model for e in served if e.model))
    stripped = [name for each in served for name in each.stripped]
    if stripped:
        headers[LEFT_OUT_FIELDS_HEADER] = named(tuple(dict.fromkeys(stripped)))
    replaced = [name for each in served for name in each.replaced]
    if replaced:
        headers[REPLACED_FIELDS_HEADER] = named(tuple(dict.fromkeys(replaced)))


def event_response(batches: Iterator, framing: Framing) -> Response:
    """Stream ``batches`` written by ``framing``, once its first write is ready (a failure
    before it is raised here, an HTTP status in the client's API). The stream counts as open
    while it waits for that too (a slot, a server starting): a proxy told to stop gives it
    its grace."""
    stream = EventStream(batches, framing, get_state().drain, this_call().measure).prime()
    # its pieces are bytes already: werkzeug's encoding wrapper would only add two more
    # layers to every write
    return Response(stream, mimetype=framing.mimetype, headers=HEADERS, direct_passthrough=True)


def client_gone_probe(environ: dict) -> Callable[[], bool]:
    """A cheap callable answering "has the client closed its connection?"."""
    sock = environ.get("gunicorn.socket") or _waitress_socket(environ)
    if isinstance(sock, socket.socket):
        return lambda: _closed(sock)
    return lambda: False


def _waitress_socket(environ: dict) -> Optional[socket.socket]:
    """The socket of waitress's connection: its probe is bound to the connection."""
    connection = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
    return getattr(connection, "socket", None)


def _closed(sock: socket.socket) -> bool:
    """An orderly close reads as end of file; pending bytes or nothing yet mean it is there.

    Readiness is asked of the kernel first, without waiting: the socket itself may have a
    timeout, and a read on it would wait that long.
    """
    try:
        if not _readable(sock):
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError, ValueError):
        return False  # nothing to read after all (ValueError: a TLS socket cannot peek)
    except OSError:
        return True


def _readable(sock: socket.socket) -> bool:
    """``poll`` where there is one: ``select`` fails on descriptors above 1023, which a
    proxy holding hundreds of streams reaches; Windows has only ``select``."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])
