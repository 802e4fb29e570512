"""Every server the proxy runs, in one pool: spawning them from one long-lived thread, the
limits on what runs at once (``max_running`` servers, ``max_memory`` bytes: each server's
estimate until it has been measured), and the reaper of idle ones."""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from proxy.core.errors import UpstreamUnavailableError
from proxy.servers.launch import Launch, die_with_parent
from proxy.servers.memory import show
from proxy.servers.processes import ManagedServer

ROOM_POLL = 0.2  # seconds between looks for a server to stop, when all are busy


class ProcessPool:
    """Every managed server of the proxy: spawning, the limits on what runs at once (servers,
    memory), and the idle reaper."""

    def __init__(self, max_running: int = 0, max_memory: int = 0) -> None:
        """``max_memory``: bytes every running server may take together; 0 = no limit."""
        self.max_running = max_running
        self.max_memory = max_memory
        self.servers: list = []
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="spawner")
        self._lock = threading.Lock()
        self._starting: set = set()  # servers starting that were given room
        self._closed = threading.Event()
        self._reaper: Optional[threading.Thread] = None

    def add(self, server: ManagedServer) -> ManagedServer:
        """Run ``server`` too; a ``ValueError`` when it could never fit in ``max_memory``."""
        if self.max_memory and server.launch.estimate > self.max_memory:
            raise ValueError(
                f"{server.name} needs about {show(server.launch.estimate)}, more "
                f"than the {show(self.max_memory)} the servers may take "
                f"(--max-memory)"
            )
        self.servers.append(server)
        if self._reaper is None:  # any server's idle time may be set later (keep_alive)
            self._reaper = threading.Thread(target=self._reap, name="reaper", daemon=True)
            self._reaper.start()
        return server

    def retire(self, server: ManagedServer, within: float) -> None:
        """Stop ``server`` once the requests it serves have ended (at most ``within`` seconds
        from now) and run it no more: its model is no longer served."""
        deadline = time.monotonic() + within
        while server.in_flight and time.monotonic() < deadline:
            time.sleep(ROOM_POLL)
        server.close("its model is no longer served")
        with self._lock:
            if server in self.servers:
                self.servers.remove(server)

    def spawn(self, launch: Launch) -> subprocess.Popen:
        """Start ``launch`` from the one spawner thread, which lives as long as the proxy."""

        def run() -> subprocess.Popen:
            launch.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(launch.log_path, "ab") as log:
                log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {launch.shown}\n".encode())
                log.flush()
                return subprocess.Popen(
                    launch.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=launch.env,
                    cwd=launch.log_path.parent,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )

        try:
            return self._spawner.submit(run).result()
        except OSError as exc:
            raise UpstreamUnavailableError(
                f"cannot start the server of {launch.name}: {exc.strerror}",
                detail=f"command {launch.command[0]}",
            ) from None

    def make_room(self, starting: ManagedServer) -> None:
        """Until ``starting`` fits (``max_running`` servers, ``max_memory`` bytes), stop the
        least recently used idle server; while every other is busy (or starting), wait for
        one to fall idle, up to the start's own deadline. A start that found room counts as
        running until it ends (see :meth:`started`): two starts at once cannot both take the
        last place."""
        if not (self.max_running or self.max_memory):
            return
        deadline = time.monotonic() + starting.launch.ready_timeout
        while True:
            with self._lock:
                running = [
                    s
                    for s in self.servers
                    if s is not starting and (s.state == "ready" or s in self._starting)
                ]
                for server in running:
                    server.measure()
                now = time.monotonic()
                idle = sorted(
                    (s for s in running if s.idle_for(now) > 0),
                    key=lambda s: s.idle_for(now),
                    reverse=True,
                )
                while not self._fits(starting, running):
                    victim = next(
                        (
                            s
                            for s in idle
                            if s.stop_if_idle(f"making room for {starting.launch.name}")
                        ),
                        None,
                    )
                    if victim is None:
                        break
                    idle.remove(victim)
                    running.remove(victim)
                if self._fits(starting, running):
                    self._starting.add(starting)
                    return
            if time.monotonic() >= deadline:
                raise UpstreamUnavailableError(
                    f"{len(running)} model servers stayed running and busy (max_running "
                    f"{self.max_running or 'unset'}, max_memory {show(self.max_memory)}) "
                    f"for {starting.launch.ready_timeout:g}s; retry shortly",
                    retry_after=5,
                )
            time.sleep(ROOM_POLL)

    def _fits(self, starting: ManagedServer, running: list) -> bool:
        if self.max_running and len(running) >= self.max_running:
            return False
        return not self.max_memory or (
            sum(server.need for server in running) + starting.need <= self.max_memory
        )

    def started(self, server: ManagedServer) -> None:
        """``server``'s start has ended, ready or not: it counts as what it now is."""
        with self._lock:
            self._starting.discard(server)

    def close(self) -> None:
        """Stop every server at once: each gets its own grace period, not a share of one."""
        self._closed.set()
        stopping = [
            threading.Thread(target=server.close, args=("the proxy is stopping",))
            for server in self.servers
        ]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        self._spawner.shutdown(wait=False)

    def _reap(self) -> None:
        while not self._closed.wait(1.0):
            now = time.monotonic()
            for server in self.servers:
                if server.ttl and server.idle_for(now) > server.ttl:
                    server.stop_if_idle(f"idle for more than {server.ttl:g}s")
