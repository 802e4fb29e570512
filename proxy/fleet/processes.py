"""Model servers the proxy starts and stops itself: one :class:`ManagedServer` per model.

Each server runs in its own process group, is started from one long-lived thread with a
parent-death signal (so even a proxy killed with SIGKILL takes its servers along), and writes
its output to a log file of its own. A start is shared by every request that needs it; a
start that fails answers 503 with the last lines of the server's output, and the next request
tries again. A server that dies is started again by the next request, after a back-off that
grows while it keeps dying. Idle servers stop after their ``ttl``, and with ``max_running``
set, starting one more stops the least recently used idle one first.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from proxy.errors import UpstreamUnavailableError
from proxy.ops.measure import waiting

logger = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL = 20  # lines of a failed server's output quoted in the error
FIRST_BACKOFF, LAST_BACKOFF = 1.0, 30.0
ROOM_POLL = 0.2  # seconds between looks for a server to stop, when all are busy
STABLE = 60.0  # seconds up after which a death is a first one again
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Ask Linux to send SIGTERM when the thread that started us ends (the proxy dies)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the proxy's own exit handling stops its servers


@dataclass(frozen=True)
class Launch:
    """How to start one model's server, ready to run: the command, its port, its log."""

    name: str
    command: tuple
    port: int
    log_path: Path
    env: dict
    ttl: float = 0.0  # seconds idle before it is stopped; 0 = never
    ready_timeout: float = 300.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ManagedServer:
    """One model's server process and its state: stopped, starting, ready or failed."""

    def __init__(self, launch: Launch, pool: "ProcessPool",
                 ready: Callable[[str], Optional[bool]], *, preload: bool = False) -> None:
        """``ready(url)`` says True when the server serves, False while it loads, and None
        when nothing answers yet."""
        self.launch = launch
        self.pool = pool
        self.ready = ready
        self.preload = preload
        self.state = "stopped"
        self.error = ""
        self.in_flight = 0
        self.last_used = 0.0
        self.started_at = 0.0
        self.deaths = 0
        self._process: Optional[subprocess.Popen] = None
        self._not_before = 0.0
        self._attempt = 0  # starts so far: a waiter shares the fate of the one it waited for
        self._lock = threading.Condition()

    @property
    def name(self) -> str:
        return self.launch.name

    @property
    def url(self) -> str:
        return self.launch.url

    # -- what requests do ------------------------------------------------------------------

    @contextmanager
    def using(self) -> Iterator[None]:
        """Hold the server running (started if need be) for the ``with`` block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        """Start the server if need be, and count one more request in it.

        The count goes up under the same lock that finds the server ready, so the idle
        reaper or a swap cannot stop it in between; if one did just before, it starts again.
        """
        with waiting():
            while True:
                self.ensure()
                with self._lock:
                    if self.state == "ready" and self._alive():
                        self.in_flight += 1
                        return

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self.last_used = time.monotonic()

    def is_ready(self) -> bool:
        """Whether a request would find the server serving, without waiting for a start."""
        with self._lock:
            return self.state == "ready" and self._alive()

    def gone(self, within: float) -> bool:
        """Whether the server is not running, waiting up to ``within`` seconds for an exit
        under way: a dying server's sockets close a moment before it can be reaped."""
        with self._lock:
            process = self._process
        if process is None:
            return True
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            return False
        return True

    def ensure(self) -> None:
        """Return once the server is ready; start it, or wait for a start under way."""
        with self._lock:
            awaited = None
            while True:
                if self.state == "ready" and self._alive():
                    self.last_used = time.monotonic()
                    return
                if self.state == "ready":  # it died since
                    self._died()
                if self.state == "failed" and awaited == self._attempt:
                    raise UpstreamUnavailableError(self.error, retry_after=5)
                if self.state != "starting":
                    break
                awaited = self._attempt
                self._lock.wait(0.5)
            self.state = "starting"
            self._attempt += 1
        try:
            self._start()
        except BaseException as exc:
            with self._lock:
                self.state = "failed"
                self.error = (exc.message if isinstance(exc, UpstreamUnavailableError) else
                              f"the server of {self.launch.name} could not be started "
                              f"({type(exc).__name__}); see the proxy's log")
                self._lock.notify_all()
            raise
        else:
            with self._lock:
                self.state, self.error = "ready", ""
                self.last_used = time.monotonic()
                self._lock.notify_all()
        finally:
            self.pool.started(self)

    def stop(self, why: str = "") -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after a grace period."""
        self._stop(why, only_idle=False)

    def stop_if_idle(self, why: str) -> bool:
        """Stop the server unless a request holds it (it may have taken it just now)."""
        return self._stop(why, only_idle=True)

    def _stop(self, why: str, *, only_idle: bool) -> bool:
        with self._lock:
            if only_idle and (self.in_flight or self.state != "ready"):
                return False
            process, self._process = self._process, None
            self.state = "stopped"
            self.deaths, self._not_before = 0, 0.0  # stopped on purpose: no back-off owed
        if process is not None and process.poll() is None:
            logger.info("stopping %s%s", self.launch.name, f" ({why})" if why else "")
            _stop_group(process)
        return True

    def snapshot(self) -> dict:
        with self._lock:
            idle = time.monotonic() - self.last_used if self.last_used and not self.in_flight \
                else 0.0
            return {"state": self.state, "url": self.launch.url, "in_flight": self.in_flight,
                    "idle_seconds": round(idle, 1), "log": str(self.launch.log_path),
                    **({"error": self.error} if self.error else {})}

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        try:
            text = self.launch.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- starting ----------------------------------------------------------------------------

    def _start(self) -> None:
        pause = self._not_before - time.monotonic()
        if pause > 0:  # it keeps dying: do not spin
            time.sleep(pause)
        self.pool.make_room(self)
        started = time.monotonic()
        logger.info("starting %s: %s", self.launch.name, " ".join(self.launch.command))
        self._process = self.pool.spawn(self.launch)
        self.started_at = started
        deadline = started + self.launch.ready_timeout
        announced = False
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise UpstreamUnavailableError(
                    f"the server of {self.launch.name} exited during start-up; its last "
                    f"output:\n{self.log_tail()}", retry_after=5)
            answer = self.ready(self.launch.url)
            if answer:
                logger.info("%s ready in %.1fs", self.launch.name, time.monotonic() - started)
                return
            if answer is False and not announced:
                logger.info("%s is loading its model", self.launch.name)
                announced = True
            time.sleep(0.1)
        self.stop("not ready in time")
        raise UpstreamUnavailableError(
            f"the server of {self.launch.name} was not ready within "
            f"{self.launch.ready_timeout:g}s; its last output:\n{self.log_tail()}",
            retry_after=5)

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _died(self) -> None:
        """The server exited on its own: log it and back off before the next start."""
        code = self._process.returncode if self._process else None
        self._process = None
        if time.monotonic() - self.started_at > STABLE:  # it had been serving: start afresh
            self.deaths = 0
        self.deaths += 1
        backoff = min(FIRST_BACKOFF * 2 ** (self.deaths - 1), LAST_BACKOFF)
        self._not_before = time.monotonic() + backoff
        self.state = "stopped"
        logger.warning("%s exited (code %s); next start in %gs", self.launch.name, code, backoff)

    def idle_for(self, now: float) -> float:
        with self._lock:
            if self.state != "ready" or self.in_flight:
                return 0.0
            return now - self.last_used


class ProcessPool:
    """Every managed server of the proxy: spawning, the running limit, and the idle reaper."""

    def __init__(self, max_running: int = 0) -> None:
        self.max_running = max_running
        self.servers: list = []
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="spawner")
        self._lock = threading.Lock()
        self._starting: set = set()  # servers starting that were given room
        self._closed = threading.Event()
        self._reaper: Optional[threading.Thread] = None

    def add(self, server: ManagedServer) -> ManagedServer:
        self.servers.append(server)
        if server.launch.ttl and self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="reaper", daemon=True)
            self._reaper.start()
        return server

    def spawn(self, launch: Launch) -> subprocess.Popen:
        """Start ``launch`` from the one spawner thread, which lives as long as the proxy."""
        def run() -> subprocess.Popen:
            launch.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(launch.log_path, "ab") as log:
                log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
                          f"{' '.join(launch.command)}\n".encode())
                log.flush()
                return subprocess.Popen(launch.command, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, env=launch.env,
                                        cwd=launch.log_path.parent, start_new_session=True,
                                        preexec_fn=die_with_parent)
        try:
            return self._spawner.submit(run).result()
        except OSError as exc:
            raise UpstreamUnavailableError(f"cannot start the server of {launch.name}: "
                                           f"{exc.strerror}: {launch.command[0]}") from None

    def make_room(self, starting: ManagedServer) -> None:
        """With ``max_running`` reached, stop the least recently used idle server; while
        every other is busy (or starting), wait for one to fall idle, up to the start's own
        deadline. A start that found room counts as running until it ends (see
        :meth:`started`): two starts at once cannot both take the last place."""
        if not self.max_running:
            return
        deadline = time.monotonic() + starting.launch.ready_timeout
        while True:
            with self._lock:
                running = [s for s in self.servers if s is not starting
                           and (s.state == "ready" or s in self._starting)]
                if len(running) < self.max_running:
                    self._starting.add(starting)
                    return
                now = time.monotonic()
                idle = sorted((s for s in running if s.idle_for(now) > 0),
                              key=lambda s: s.idle_for(now), reverse=True)
                for victim in idle:
                    if victim.stop_if_idle(f"making room for {starting.launch.name}"):
                        self._starting.add(starting)
                        return
            if time.monotonic() >= deadline:
                raise UpstreamUnavailableError(
                    f"{len(running)} model servers stayed running and busy (max_running "
                    f"{self.max_running}) for {starting.launch.ready_timeout:g}s; retry "
                    f"shortly", retry_after=5)
            time.sleep(ROOM_POLL)

    def started(self, server: ManagedServer) -> None:
        """``server``'s start has ended, ready or not: it counts as what it now is."""
        with self._lock:
            self._starting.discard(server)

    def close(self) -> None:
        """Stop every server at once: each gets its own grace period, not a share of one."""
        self._closed.set()
        stopping = [threading.Thread(target=server.stop, args=("the proxy is stopping",))
                    for server in self.servers]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        self._spawner.shutdown(wait=False)

    def _reap(self) -> None:
        while not self._closed.wait(1.0):
            now = time.monotonic()
            for server in self.servers:
                if server.launch.ttl and server.idle_for(now) > server.launch.ttl:
                    server.stop_if_idle(f"idle for more than {server.launch.ttl:g}s")


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def command_for(template: Sequence[str], port: int, model: str) -> tuple:
    """Fill ``${PORT}`` and ``${MODEL}`` into a server command."""
    return tuple(part.replace("${PORT}", str(port)).replace("${MODEL}", model)
                 for part in template)
