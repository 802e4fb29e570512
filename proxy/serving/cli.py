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
from proxy.config.settings import Settings
from proxy.logs import log_to_stderr

logger = logging.getLogger("proxy")
LAST_WORDS = 0.5  # seconds for the last bytes of ended streams to leave, before exiting


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
            "serving the OpenAI API on http://%s:%s with %s",
            settings.serving.host,
            settings.serving.port,
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
    health = app.extensions["proxy"].router.health()
    if health.ok:
        logger.info("upstream ready: %s", health.detail)
    else:
        logger.warning(
            "upstream not ready yet (%s); requests get 503 until it is", health.detail.get("error")
        )


def serve_waitress(app, settings: Settings) -> None:
    """Serve until SIGTERM, then stop accepting and let the streams in flight finish."""
    import waitress
    from waitress import wasyncore

    from proxy.serving.keepalive import KeptChannel

    # poll(), not select(): select() fails outright once a descriptor number passes 1023,
    # which a few hundred open streams (each a client and an upstream socket) reach.
    # No request lookahead: reading a connection ahead of its running request makes the
    # event loop spin on every answer; a hang-up is noticed on the socket itself (see
    # proxy.api.serve).
    serving = settings.serving
    server = waitress.create_server(
        app,
        host=serving.host,
        port=serving.port,
        threads=serving.threads,
        connection_limit=max(100, serving.threads * 4),
        channel_timeout=600,
        asyncore_use_poll=True,
        ident="oai-proxy",
    )
    server.channel_class = KeptChannel  # a streamed answer keeps its connection
    state = app.extensions["proxy"]
    drain = state.drain

    def stop(signum, frame) -> None:
        if drain.began:
            return
        logger.info(
            "stopping: no new connections; open streams get %gs to finish",
            settings.serving.graceful_timeout,
        )
        wasyncore.dispatcher.close(server)  # the listening socket only: channels carry on
        drain.begin(settings.serving.graceful_timeout)
        threading.Thread(target=finish, name="stop", daemon=True).start()

    def finish() -> None:
        drain.wait_closed(settings.serving.graceful_timeout + LAST_WORDS)
        time.sleep(LAST_WORDS)  # the streams' last bytes leave waitress's buffers
        # waitress's loop runs while it has a socket: close them all, in the loop's own
        # thread. Not SIGINT: a process started in the background by a shell ignores it.
        server.trigger.pull_trigger(lambda: close_all(server))

    def reload(signum, frame) -> None:  # off the signal: the files may take a while
        threading.Thread(target=state.reloader.reload_logged, name="reload", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, reload)
    try:
        server.run()
    finally:
        app.extensions["proxy"].router.close()  # the servers it runs stop with it


def close_all(server) -> None:
    """Close every socket of waitress's loop (the listener, connections kept alive, its own
    trigger), which then ends."""
    for dispatcher in list(server._map.values()):
        dispatcher.close()


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
