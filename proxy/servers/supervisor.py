"""The one process that runs the model servers when gunicorn runs several workers.

gunicorn's master starts it before forking workers (:func:`start_supervisor`, from the hooks
in :mod:`proxy.serving.gunicorn`); the workers reach it through :mod:`proxy.servers.remote`.
It holds the :class:`~proxy.servers.pool.ProcessPool`: one server per model, one start shared
by every worker, the running limit and the idle reaper counted over all of them. It dies
with the master (a parent-death signal), and its servers die with it.

Run as ``python -m proxy.servers.supervisor MASTER_PID``: the settings arrive pickled on stdin,
and one line on stdout says ``ready`` or what stopped it.
"""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from multiprocessing.connection import Connection, Listener
from typing import Callable, Optional

from proxy.config.runtime import Runtime, advertise_supervisor
from proxy.config.settings import Settings
from proxy.core.errors import UpstreamUnavailableError
from proxy.logs import log_to_stderr
from proxy.queue.supervised import Queues, WorkerLink
from proxy.servers.build import load_catalog, managed_servers, preload, refresh_servers
from proxy.servers.launch import STOP_GRACE, die_with_parent

logger = logging.getLogger(__name__)

CALLS = {
    "ensure",
    "is_ready",
    "gone",
    "stop",
    "keep_for",
    "snapshot",
    "log_tail",
    "served",
    "prepare",
}


class Supervisor:
    """Answer the workers' calls on the servers of a :class:`ProcessPool` and on the queues of
    every upstream; ``refresh`` (the servers of the models served now) is called when a worker
    says the models changed."""

    def __init__(self, servers: dict, refresh: Callable[[], dict] = dict) -> None:
        self.servers = servers
        self.refresh = refresh
        self.queues = Queues()
        # every server it has run: a worker started before a model was deleted still asks
        # of its server (stopped) until gunicorn's master has replaced it
        self.known = dict(servers)

    def serve(self, listener: Listener) -> None:
        while True:
            try:
                connection = listener.accept()
            except (OSError, EOFError):  # a connection that failed its handshake
                continue
            threading.Thread(
                target=self.serve_worker, args=(connection,), daemon=True, name="supervised"
            ).start()

    def serve_worker(self, connection: Connection) -> None:
        """One worker connection; the servers it uses and the slot it leased are released when it
        drops."""
        using: Counter = Counter()
        turns = self.queues.link()
        try:
            while True:
                method, name, args = connection.recv()
                if method.startswith("queue."):
                    connection.send(self.turn(turns, method, name, args, connection))
                else:
                    connection.send(self.answer(method, name, args, using))
        except (OSError, EOFError):
            pass
        finally:
            connection.close()
            turns.release()
            for name, count in using.items():
                for _ in range(count):
                    self.known[name].release()

    @staticmethod
    def turn(turns: WorkerLink, method: str, upstream: str, args: tuple, connection) -> tuple:
        try:
            return turns.answer(method, upstream, args, connection)
        except Exception as exc:  # the worker falls back on its own queue, the log says why
            logger.error("%s of %s failed: %s: %s", method, upstream, type(exc).__name__, exc)
            return "unavailable", f"the supervisor could not {method} {upstream}; see its log", 5

    def answer(self, method: str, name: str, args: tuple, using: Counter) -> tuple:
        try:
            if method == "refresh":
                self.servers = self.refresh()
                self.known.update(self.servers)
                method = "servers"
            if method == "servers":
                return "ok", {server.name: server.url for server in self.servers.values()}, 0
            server = self.known[name]
            if method == "acquire":
                server.acquire()
                using[name] += 1
                return "ok", None, 0
            if method == "release":
                using[name] -= 1
                server.release()
                return "ok", None, 0
            if method in CALLS:
                return "ok", getattr(server, method)(*args), 0
            return "unavailable", f"the supervisor has no call {method!r}", 0
        except UpstreamUnavailableError as exc:
            return "unavailable", exc.message, exc.retry_after or 5
        except Exception as exc:  # the worker gets a 503, the log the reason
            logger.error("%s of %s failed: %s: %s", method, name, type(exc).__name__, exc)
            return "unavailable", f"the supervisor could not {method} {name}; see its log", 5


class SupervisorProcess:
    """The master's handle on the supervisor: its address, and how to stop it."""

    def __init__(self, process: subprocess.Popen, folder: str) -> None:
        self.process = process
        self.folder = folder

    def stop(self) -> None:
        """SIGTERM: the supervisor stops its servers (each gets its grace), then exits."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE + 5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_supervisor(settings: Settings) -> Optional[SupervisorProcess]:
    """Start the supervisor, and tell future workers where it is: it runs the servers of
    the models the proxy runs, configured or pulled by a client later.

    Raises ``ValueError`` with the supervisor's own words when it cannot start (a models
    file, binary or model file that cannot be used).
    """
    folder = tempfile.mkdtemp(prefix="oai-proxy-")  # 0700: only this user can connect
    address = os.path.join(folder, "supervisor.sock")
    authkey = secrets.token_bytes(32)
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.servers.supervisor", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    with process.stdin:
        pickle.dump((settings, address, authkey), process.stdin)
    with process.stdout:
        word = process.stdout.readline().decode("utf-8", "replace").strip()
    if word != "ready":
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)
        raise ValueError(word or "the process that runs the model servers did not start")
    advertise_supervisor(address, authkey)
    return SupervisorProcess(process, folder)


def main() -> None:  # pragma: no cover - runs as its own process, tested through gunicorn
    if os.getppid() != int(sys.argv[1]):
        return  # the master died before the parent-death signal was armed
    settings, address, authkey = pickle.load(sys.stdin.buffer)
    log_to_stderr(settings.observing.log_level)
    runtime = Runtime.from_environment()
    try:
        catalog = load_catalog(settings, runtime)
        pool, servers = managed_servers(catalog, settings, runtime)
        listener = Listener(address, "AF_UNIX", authkey=authkey)
    except ValueError as exc:
        print(" ".join(str(exc).split()), flush=True)
        sys.exit(2)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master decides when to stop
    try:
        preload(servers.values())
        logger.info(
            "running the servers of %s for every worker (pid %d)", ", ".join(servers), os.getpid()
        )
        print("ready", flush=True)
        changing = threading.Lock()

        def refresh() -> dict:  # a model pulled or deleted, or the models file changed
            nonlocal catalog, servers
            with changing:
                catalog = load_catalog(settings, runtime)
                servers = refresh_servers(pool, servers, catalog, settings, runtime)
                return servers

        Supervisor(servers, refresh).serve(listener)
    finally:
        listener.close()
        pool.close()


if __name__ == "__main__":
    main()
