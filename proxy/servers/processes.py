"""Model servers the proxy starts and stops itself: one :class:`ManagedServer` per model.

Each server runs in its own process group, is started from one long-lived thread with a
parent-death signal (so even a proxy killed with SIGKILL takes its servers along), and writes
its output to a log file of its own. A start is shared by every request that needs it; a
start that fails answers 503 with the last lines of the server's output, and the next request
tries again. A server that dies is started again by the next request, after a back-off that
grows while it keeps dying. Idle servers stop after their ``ttl``; starting one more than
fit stops the least recently used idle ones first (:mod:`proxy.servers.pool`).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Protocol

import psutil

from proxy.core.errors import UpstreamUnavailableError
from proxy.ops.measure import Measure, waiting
from proxy.servers.launch import Launch, stop_group
from proxy.servers.memory import show
from proxy.servers.showing import why_it_failed
from proxy.servers.slotcache import SavedSlots, SlotKeeper

logger = logging.getLogger(__name__)

FIRST_BACKOFF, LAST_BACKOFF = 1.0, 30.0
STABLE = 60.0  # seconds up after which a death is a first one again


class Room(Protocol):
    """What a server asks of the pool it runs in (:class:`~proxy.servers.pool.ProcessPool`)."""

    def make_room(self, starting: "ManagedServer") -> None:
        """Return once ``starting`` fits among the servers running."""

    def spawn(self, launch: Launch) -> subprocess.Popen:
        """Start ``launch``'s process."""

    def started(self, server: "ManagedServer") -> None:
        """``server``'s start has ended, ready or not."""


class ManagedServer:
    """One model's server process and its state: stopped, starting, ready or failed."""

    def __init__(
        self,
        launch: Launch,
        pool: Room,
        ready: Callable[[str], Optional[bool]],
        *,
        preload: bool = False,
        slot_files: Optional[SavedSlots] = None,
        save_every_turn: bool = False,
        port: Optional[socket.socket] = None,
    ) -> None:
        """``ready(url)`` says True when the server serves, False while it loads, and None
        when nothing answers yet. ``slot_files``: where its conversations' KV caches are
        kept while it is stopped (None: they are not); ``save_every_turn`` keeps them after
        every answer too, so that they outlive a crash. ``port``: the socket that keeps its
        port while it is stopped (:func:`~proxy.servers.launch.bind_port`)."""
        self.launch = launch
        self.port = port
        self.pool = pool
        self.ready = ready
        self.preload = preload
        self.slots = (
            None
            if slot_files is None
            else SlotKeeper(launch.name, launch.url, slot_files, save_every_turn)
        )
        self.ttl = launch.ttl  # seconds idle before it stops (0: never); a client may change it
        self.state = "stopped"
        self.error = ""  # the operator's account of a failed start: its output
        self.reason = ""  # a client's: one line, with no path or address in it
        self.in_flight = 0
        self.last_used = 0.0
        self.started_at = 0.0
        self.deaths = 0
        self.measured: Optional[int] = None  # bytes it took when last measured running
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
    def using(self, measure: Optional[Measure] = None) -> Iterator[None]:
        """Keep the server running (started if need be) for the ``with`` block."""
        self.acquire(measure)
        try:
            yield
        finally:
            self.release()

    def acquire(self, measure: Optional[Measure] = None) -> None:
        """Start the server if need be, and count one more request in it (the wait is
        ``measure``'s).

        The count goes up under the same lock that finds the server ready, so the idle
        reaper or a swap cannot stop it in between; if one did just before, it starts again.
        """
        with waiting(measure):
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
                    raise UpstreamUnavailableError(
                        self._failure(), retry_after=5, detail=self.error
                    )
                if self.state not in ("starting", "saving"):
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
                self.error = self.launch.scrubbed(
                    str(exc)
                    if isinstance(exc, UpstreamUnavailableError)
                    else f"the server of {self.launch.name} could not be started; "
                    f"see the proxy's log"
                )
                self._lock.notify_all()
            if isinstance(exc, UpstreamUnavailableError):
                raise UpstreamUnavailableError(
                    self._failure(), retry_after=5, detail=self.error
                ) from None
            raise
        else:
            with self._lock:
                self.state, self.error = "ready", ""
                self.last_used = time.monotonic()
                self._lock.notify_all()
        finally:
            self.pool.started(self)

    def keep_for(self, seconds: float) -> None:
        """Stop the server once idle for ``seconds`` (negative: never), as a client asks
        (Ollama's ``keep_alive``)."""
        self.ttl = max(float(seconds), 0.0)

    def stop(self, why: str = "") -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after a grace period."""
        self._stop(why, only_idle=False)

    def close(self, why: str) -> None:
        """Stop the server for good: its port is given back."""
        self.stop(why)
        if self.port is not None:
            self.port.close()

    def stop_if_idle(self, why: str) -> bool:
        """Stop the server unless a request uses it (it may have taken it just now)."""
        return self._stop(why, only_idle=True)

    def _stop(self, why: str, *, only_idle: bool) -> bool:
        """Stop it, its conversations' caches saved first when it keeps them: meanwhile it
        is ``saving``, and requests for it wait for the stop, then start it again."""
        with self._lock:
            if only_idle and (self.in_flight or self.state != "ready"):
                return False
            saving = self.state == "ready" and self._alive() and self.slots is not None
            if saving:
                self.state = "saving"
        if saving:
            self.slots.save_all()
        with self._lock:
            process, self._process = self._process, None
            self.state = "stopped"
            self.deaths, self._not_before = 0, 0.0  # stopped on purpose: no back-off owed
            self._lock.notify_all()
        if process is not None and process.poll() is None:
            logger.info("stopping %s%s", self.launch.name, f" ({why})" if why else "")
            stop_group(process, self.launch.stop_grace)
        return True

    # -- conversations' KV caches ------------------------------------------------------------

    def served(self, conversation: Optional[str], slot: Optional[int]) -> None:
        """``conversation`` was just answered from ``slot``: the slot now holds it."""
        if self.slots is not None:
            self.slots.served(conversation, slot)

    def prepare(
        self, conversation: Optional[str], pinned: Optional[int], new: bool = False
    ) -> Optional[int]:
        """The slot ``conversation``'s next turn runs in (see
        :meth:`~proxy.servers.slotcache.SlotKeeper.prepare`); ``None`` (the server picks)
        when the proxy keeps no caches for it."""
        return None if self.slots is None else self.slots.prepare(conversation, pinned, new)

    @property
    def need(self) -> int:
        """The memory it takes or may grow to: the larger of its estimate and what it was
        measured to take (its KV cache is resident only once it is used)."""
        return max(self.launch.estimate, self.measured or 0)

    def measure(self) -> Optional[int]:
        """Its resident memory now (its children's too), kept as :attr:`measured`."""
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return None
        try:
            tree = psutil.Process(process.pid)
            self.measured = sum(
                each.memory_info().rss for each in (tree, *tree.children(recursive=True))
            )
        except psutil.Error:
            return None
        return self.measured

    def snapshot(self) -> dict:
        if self.state == "ready":
            self.measure()
        with self._lock:
            idle = (
                time.monotonic() - self.last_used if self.last_used and not self.in_flight else 0.0
            )
            return {
                "state": self.state,
                "url": self.launch.url,
                "engine": self.launch.program,  # the pages' word for it
                "in_flight": self.in_flight,
                "ttl": self.ttl,
                "idle_seconds": round(idle, 1),
                "log": str(self.launch.log_path),
                "memory": {"estimate": self.launch.estimate, "measured": self.measured},
                **({"error": self.error, "reason": self.reason} if self.error else {}),
            }

    def _failure(self) -> str:
        """What a client is told of a failed start: that it failed and why, in a line with
        no path or address in it; the whole output is the operator's, in the proxy's log
        and the admin API."""
        why = f": {self.reason}" if self.reason else ""
        return (
            f"the server of {self.launch.name} could not be started{why}; an operator finds "
            f"its output in the proxy's log and its admin API (GET /admin/models)"
        )

    def log_tail(self, lines: int) -> str:
        """The last ``lines`` of its log: the admin API's, here or across processes."""
        return self.launch.log_tail(lines)

    # -- starting ----------------------------------------------------------------------------

    def _start(self) -> None:
        pause = self._not_before - time.monotonic()
        if pause > 0:  # it keeps dying: do not spin
            time.sleep(pause)
        self.pool.make_room(self)
        if self.slots is not None:
            self.slots.forget_all()  # a new process: its slots hold nothing yet
        started = time.monotonic()
        logger.info(
            "starting %s with %s: %s", self.launch.name, self.launch.program, self.launch.shown
        )
        self.reason = ""
        self._process = self.pool.spawn(self.launch)
        self.started_at = started
        deadline = started + self.launch.ready_timeout
        announced = False
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                self.reason = (
                    why_it_failed(self.launch.run_output()) or f"it exited with code {code}"
                )
                logger.error(
                    "the server of %s exited while it started (%s); its last output:\n%s",
                    self.launch.name,
                    self.reason,
                    self.launch.log_tail(),
                )
                raise UpstreamUnavailableError(
                    f"the server of {self.launch.name} exited during start-up; its last "
                    f"output:\n{self.launch.log_tail()}",
                    retry_after=5,
                )
            answer = self.ready(self.launch.url)
            if answer:
                self.measure()
                logger.info(
                    "%s ready in %.1fs, using %s (estimated %s)",
                    self.launch.name,
                    time.monotonic() - started,
                    show(self.measured or 0),
                    show(self.launch.estimate),
                )
                return
            if answer is False and not announced:
                logger.info("%s is loading its model", self.launch.name)
                announced = True
            time.sleep(0.1)
        self.stop("not ready in time")
        self.reason = f"it was not ready within {self.launch.ready_timeout:g}s"
        logger.error(
            "the server of %s %s; its last output:\n%s",
            self.launch.name,
            self.reason.removeprefix("it "),
            self.launch.log_tail(),
        )
        raise UpstreamUnavailableError(
            f"the server of {self.launch.name} was not ready within "
            f"{self.launch.ready_timeout:g}s; its last output:\n{self.launch.log_tail()}",
            retry_after=5,
        )

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
