"""The ``oai-proxy`` command: flags to settings, then serve with waitress, gunicorn or
granian."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Optional, Sequence

from proxy.config.runtime import Runtime
from proxy.config.settings import Settings, largest_upload
from proxy.logs import log_to_stderr

logger = logging.getLogger("proxy")
LAST_WORDS = 3.0  # seconds after the grace for the ended streams' last bytes to leave
SEND_POLL = 0.05  # seconds between two looks at what is left to send


def main(argv: Optional[Sequence[str]] = None) -> None:
    settings = Settings.from_args(argv)
    log_to_stderr(settings.observing.log_level)
    from proxy.serving.gunicorn import Master

    # made before the app is imported: it would otherwise run the model servers itself, and
    # prometheus_client, once imported, would keep the metrics in this process alone
    master = Master(settings) if settings.serving.server in ("gunicorn", "granian") else None
    if master is not None:
        or_exit(lambda _: master.start(), settings)
    from proxy.app import create_app

    try:
        app = or_exit(lambda _: create_app(settings, Runtime.from_environment()), settings)
        report_upstream(app)
        logger.info(
            "serving the OpenAI API on %s with %s",
            ", ".join(f"http://{address}" for address in settings.serving.addresses()),
            settings.serving.server,
        )
        if master is not None:
            app.extensions["proxy"].router.close()  # each worker makes its own after the fork
            if settings.serving.server == "granian":
                from proxy.serving.granian import serve_granian

                serve_granian(settings, master)
            else:
                serve_gunicorn(settings)
        else:
            serve_waitress(app, settings)
    finally:
        if master is not None:
            master.stop()


def or_exit(make, settings: Settings):
    """``make(settings)``; a bad template, key or models file ends the command with one line
    saying what is wrong, not a traceback."""
    try:
        return make(settings)
    except ValueError as exc:
        sys.exit(f"oai-proxy: {exc}")


def report_upstream(app) -> None:
    """Detect the upstream at start-up; a missing one is logged, not fatal."""
    health = app.extensions["proxy"].router.check()
    if health.ok:
        logger.info("upstream ready: %s", health.detail)
    else:
        logger.warning(
            "upstream not ready yet (%s); requests get 503 until it is", health.detail.get("error")
        )


def largest_body(settings: Settings) -> int:
    """The largest request body the app may accept: a request's, or an upload's."""
    return max(settings.limits.max_body_size, largest_upload(settings.stores))


def serve_waitress(app, settings: Settings) -> None:
    """Serve until SIGTERM, then stop accepting and let the answers in flight finish."""
    import waitress
    from waitress import wasyncore

    from proxy.serving.dispatch import dispatcher
    from proxy.serving.keepalive import KeptChannel

    # poll(), not select(): select() fails outright once a descriptor number passes 1023,
    # which a few hundred open streams (each a client and an upstream socket) reach.
    # No request lookahead: reading a connection ahead of its running request makes the
    # event loop spin on every answer; a hang-up is noticed on the socket itself (see
    # proxy.api.serve).
    serving = settings.serving
    sockets: dict = {}  # waitress's map: a listening server per address, then connections
    listen = " ".join(serving.addresses())
    try:
        server = waitress.create_server(
            app,
            sockets,
            _dispatcher=dispatcher(serving.threads),  # its idle threads woken last-in first-out
            listen=listen,
            threads=serving.threads,
            connection_limit=max(100, serving.threads * 4),
            channel_timeout=600,
            asyncore_use_poll=True,
            ident="oai-proxy",
            # waitress reads a whole body (to a file past 512 KiB) before the app sees it: a
            # body larger than any the app accepts is refused from its header instead
            max_request_body_size=largest_body(settings),
        )
    except OSError as exc:  # a port another process holds: one line, not a traceback
        sys.exit(f"oai-proxy: cannot listen on {listen}: {exc.strerror or exc}")
    listening = listeners(sockets)
    for each in listening:
        each.channel_class = KeptChannel  # a streamed answer keeps its connection
    state = app.extensions["proxy"]
    drain = state.drain

    def stop(signum, frame) -> None:
        if drain.began:
            return
        logger.info(
            "stopping: no new connections; open streams get %gs to finish",
            settings.serving.graceful_timeout,
        )
        for each in listening:  # the listening sockets only: channels carry on
            wasyncore.dispatcher.close(each)
        drain.begin(settings.serving.graceful_timeout)
        threading.Thread(target=finish, name="stop", daemon=True).start()

    def finish() -> None:
        # waitress's loop runs while it has a socket: close each connection once its answer
        # has run and its last bytes have left, in the loop's own thread, then the loop's
        # trigger; what is left after the grace and LAST_WORDS is closed as it is. Not
        # SIGINT: a process started in the background by a shell ignores it.
        deadline = time.monotonic() + settings.serving.graceful_timeout + LAST_WORDS
        trigger = listening[0].trigger
        while not close_in_loop(trigger, sockets, everything=time.monotonic() > deadline):
            time.sleep(SEND_POLL)

    def reload(signum, frame) -> None:  # off the signal: the files may take a while
        threading.Thread(target=state.reloader.reload_logged, name="reload", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, reload)
    try:
        server.run()
    finally:
        app.extensions["proxy"].router.close()  # the servers it runs stop with it


def listeners(sockets: dict) -> list:
    """The listening servers of waitress's map, one per address."""
    from waitress.server import BaseWSGIServer

    return [s for s in list(sockets.values()) if isinstance(s, BaseWSGIServer)]


def close_in_loop(trigger, sockets: dict, everything: bool) -> bool:
    """:func:`close_sent`, run in waitress's loop (pulling its ``trigger``); it returns once
    that has run, so the trigger is pulled again only while it is still open (or at once,
    when the loop ended another way: a second signal, say)."""
    ran, closed = threading.Event(), []

    def close() -> None:
        try:
            closed.append(close_sent(sockets, everything))
        finally:
            ran.set()

    try:
        trigger.pull_trigger(close)
    except OSError:  # the trigger is closed: the loop has ended, nothing is left to close
        return True
    ran.wait()
    return closed == [True]


def close_sent(map: dict, everything: bool) -> bool:
    """Close each of waitress's connections (in its ``map``) that has nothing left to send
    or run (every one when ``everything``); once none is left, the loop's other sockets
    too, which ends it. Whether it did."""
    from waitress.channel import HTTPChannel

    sockets = list(map.values())
    channels = [s for s in sockets if isinstance(s, HTTPChannel)]
    sending = [c for c in channels if c.requests or c.total_outbufs_len]
    for channel in channels:
        if everything or channel not in sending:
            channel.handle_close()
    if sending and not everything:
        return False
    for other in sockets:
        if not isinstance(other, HTTPChannel):
            other.close()
    return True


def serve_gunicorn(settings: Settings) -> None:
    from gunicorn.app.base import BaseApplication

    from proxy.app import create_app
    from proxy.serving.gunicorn import gunicorn_options

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings).items():
                self.cfg.set(key, value)

        def load(self):
            return create_app(settings, Runtime.from_environment())  # the worker's own

    Gunicorn().run()
