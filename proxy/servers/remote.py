"""A gunicorn worker's view of the model servers: handles on the one process that runs them.

Every worker asks the supervisor (:mod:`proxy.servers.supervisor`) over a Unix socket, so
however many workers there are, each model has one server, started once. A request keeps
its connection for as long as it uses the server: if the worker dies, the supervisor sees the
connection drop and stops counting the request.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from multiprocessing.connection import Client, Connection
from typing import Iterator, Optional

from proxy.core.errors import UpstreamUnavailableError
from proxy.ops.measure import Measure, waiting

IDLE_CONNECTIONS = 8  # kept open per worker for the next calls
GONE = "the process that runs the model servers is gone; the proxy must be restarted"


class Supervised:
    """Connections to the supervisor, reused between calls."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey
        self._idle: list = []
        self._lock = threading.Lock()

    def call(self, method: str, name: str = "", *args):
        """One request and its answer; the supervisor's 503 is raised here as ours."""
        with self.connection() as connection:
            return self.ask(connection, method, name, *args)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        try:
            connection = self.take()
        except OSError:
            raise UpstreamUnavailableError(GONE, retry_after=5) from None
        try:
            yield connection
        finally:
            self.give(connection)

    def take(self) -> Connection:
        """An idle connection, or a new one (an ``OSError`` when the supervisor is gone)."""
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        return connection or Client(self.address, "AF_UNIX", authkey=self.authkey)

    def give(self, connection: Connection) -> None:
        """Keep ``connection`` for the next call, unless closed or enough are kept."""
        if connection.closed:
            return
        with self._lock:
            if len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()

    @staticmethod
    def ask(connection: Connection, method: str, name: str = "", *args):
        try:
            connection.send((method, name, args))
            outcome, value, retry_after = connection.recv()
        except (OSError, EOFError):
            connection.close()
            raise UpstreamUnavailableError(GONE, retry_after=5) from None
        if outcome == "unavailable":
            raise UpstreamUnavailableError(value, retry_after=retry_after)
        return value

    def servers(self) -> dict:
        """A handle on every server the supervisor runs, by model id."""
        return {name: RemoteServer(self, name, url) for name, url in self.call("servers").items()}

    def retire(self, server: "RemoteServer", within: float) -> None:
        """Nothing for a worker to do: the supervisor retires the servers it runs when it
        reads the models anew."""

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class RemoteServer:
    """The same calls as :class:`~proxy.servers.processes.ManagedServer`, answered remotely."""

    def __init__(self, supervised: Supervised, name: str, url: str) -> None:
        self.supervised = supervised
        self.name = name
        self.url = url

    @contextmanager
    def using(self, measure: Optional[Measure] = None) -> Iterator[None]:
        """Keep the server running for the ``with`` block, on a connection of its own (the
        wait for its start is ``measure``'s)."""
        with self.supervised.connection() as connection:
            with waiting(measure):
                self.supervised.ask(connection, "acquire", self.name)
            try:
                yield
            finally:
                self.supervised.ask(connection, "release", self.name)

    def ensure(self) -> None:
        self.supervised.call("ensure", self.name)

    def is_ready(self) -> bool:
        return self.supervised.call("is_ready", self.name)

    def gone(self, within: float) -> bool:
        return self.supervised.call("gone", self.name, within)

    def stop(self, why: str = "") -> None:
        self.supervised.call("stop", self.name, why)

    def keep_for(self, seconds: float) -> None:
        self.supervised.call("keep_for", self.name, seconds)

    def snapshot(self) -> dict:
        return self.supervised.call("snapshot", self.name)

    def log_tail(self, lines: int) -> str:
        return self.supervised.call("log_tail", self.name, lines)

    def served(self, conversation: Optional[str], slot: Optional[int]) -> None:
        self.supervised.call("served", self.name, conversation, slot)

    def prepare(
        self, conversation: Optional[str], pinned: Optional[int], new: bool = False
    ) -> Optional[int]:
        return self.supervised.call("prepare", self.name, conversation, pinned, new)
