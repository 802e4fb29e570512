"""Servers the proxy runs, as a state machine over real (tiny) processes: starts shared,
failures told, the running limit kept when starts race, and busy servers never stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from proxy.core.errors import UpstreamUnavailableError
from proxy.servers import processes
from proxy.servers.launch import Launch, bind_port
from proxy.servers.pool import ProcessPool
from proxy.servers.processes import FIRST_BACKOFF, ManagedServer
from tests.polling import wait_for

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")


class Watch:
    """Tells each server ready once its process has been up a moment, and records how many
    ran at once."""

    def __init__(self, pool: ProcessPool, delay: float = 0.2) -> None:
        self.pool = pool
        self.delay = delay
        self.most_at_once = 0

    def ready(self, url: str) -> bool:
        time.sleep(self.delay)
        running = sum(1 for s in self.pool.servers if s._alive())
        self.most_at_once = max(self.most_at_once, running)
        return True


def server(
    pool: ProcessPool,
    watch: Watch,
    tmp_path: Path,
    name: str,
    command: tuple = SLEEPER,
    ttl: float = 0.0,
    ready=None,
    stop_grace: float = 5.0,
) -> ManagedServer:
    launch = Launch(
        name,
        command,
        1,
        tmp_path / f"{name}.log",
        {},
        ttl=ttl,
        ready_timeout=20,
        stop_grace=stop_grace,
    )
    return pool.add(ManagedServer(launch, pool, ready or watch.ready))


@pytest.fixture
def pool():
    pool = ProcessPool(max_running=1)
    yield pool
    pool.close()


def test_starts_that_race_for_the_last_place_take_turns(pool, tmp_path):
    watch = Watch(pool)
    servers = [server(pool, watch, tmp_path, name) for name in ("a", "b", "c")]

    def use(each: ManagedServer) -> str:
        with each.using():
            time.sleep(0.1)
        return each.state

    with ThreadPoolExecutor(6) as threads:
        states = list(threads.map(use, servers * 2))
    assert states.count("ready") + states.count("stopped") == 6  # every request was served
    assert watch.most_at_once == 1
    assert sum(1 for each in servers if each._alive()) <= 1


def test_a_server_in_use_is_not_stopped_for_idling_or_for_room(pool, tmp_path):
    watch = Watch(pool, delay=0)
    used = server(pool, watch, tmp_path, "used")
    with used.using():
        assert not used.stop_if_idle("idle")
        assert used.state == "ready" and used._alive()
    assert used.stop_if_idle("idle") and used.state == "stopped"


def test_a_busy_server_makes_the_next_start_wait_not_fail(pool, tmp_path):
    """The second start looks for room twice, finding the first busy, and is ready only
    once the first has let go."""
    watch = Watch(pool, delay=0)
    first, second = (server(pool, watch, tmp_path, name) for name in ("first", "second"))
    using, released = threading.Event(), threading.Event()
    events = []

    def use_then_let_go() -> None:
        with first.using():
            using.set()
            released.wait(30)
            events.append("the first lets go")

    def start_second() -> None:
        with second.using():
            events.append(f"the second is {second.state}")

    looks = []  # how long the first had been idle, each time a start looked for room
    idle_for = first.idle_for

    def looked_at(now: float) -> float:
        looks.append(idle_for(now))
        return looks[-1]

    first.idle_for = looked_at
    user = threading.Thread(target=use_then_let_go)
    user.start()
    assert using.wait(30)
    starter = threading.Thread(target=start_second)
    starter.start()
    wait_for(lambda: len(looks) >= 2, "the second start to look for room twice")
    released.set()
    user.join(30)
    starter.join(30)
    assert looks[:2] == [0.0, 0.0]  # busy both times: it waited, and did not fail
    assert events == ["the first lets go", "the second is ready"]
    assert first.state == "stopped" and watch.most_at_once <= 1


def test_a_failed_start_says_why_and_the_next_request_tries_again(pool, tmp_path, caplog):
    watch = Watch(pool, delay=0)
    output = "print('loading'); print('error: cannot read /srv/models/x.gguf from 10.0.0.5:80')"
    broken = server(
        pool,
        watch,
        tmp_path,
        "broken",
        command=(sys.executable, "-c", f"{output}; exit(1)"),
        ready=lambda url: None,
    )  # nothing listens: the start sees it exit
    for _ in range(2):
        with pytest.raises(UpstreamUnavailableError) as failed:
            broken.acquire()
        # a client reads why, with no path or address of the proxy's machine in it; the
        # server's whole output is the operator's (the log, the admin API)
        message = failed.value.message
        assert "could not be started: cannot read x.gguf from an address;" in message
        assert "/srv/models" not in message and "10.0.0.5" not in message
        assert "/srv/models/x.gguf" in failed.value.detail and broken.error == failed.value.detail
        assert broken.state == "failed" and broken.snapshot()["reason"] in message
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and "/srv/models/x.gguf from 10.0.0.5:80" in errors[0].getMessage()
    assert (tmp_path / "broken.log").read_text().count("--- ") == 2  # started twice


def test_a_secret_in_the_command_is_blanked_wherever_the_command_shows(pool, tmp_path, caplog):
    """The log's start line, the proxy's log, the error and the log's tail: a server that
    echoes its key has it blanked too."""
    echo = "import sys; print('started with', sys.argv[-1]); exit(1)"
    broken = server(
        pool,
        Watch(pool, delay=0),
        tmp_path,
        "keyed",
        command=(sys.executable, "-c", echo, "--api-key", "SOMESECRET"),
        ready=lambda url: None,
    )
    with (
        caplog.at_level("INFO", logger="proxy.servers"),
        pytest.raises(UpstreamUnavailableError) as failed,
    ):
        broken.acquire()
    written = (tmp_path / "keyed.log").read_text()
    assert "--api-key ***" in written and "started with SOMESECRET" in written
    for shown in (
        failed.value.detail,
        broken.error,
        broken.snapshot()["error"],
        broken.launch.log_tail(),
        caplog.text,
    ):
        assert "SOMESECRET" not in shown and "***" in shown


def test_an_idle_server_stops_after_its_ttl(tmp_path):
    pool = ProcessPool()
    try:
        idle = server(pool, Watch(pool, delay=0), tmp_path, "idle", ttl=0.5)
        with idle.using():
            pass
        deadline = time.monotonic() + 10
        while idle.state != "stopped":
            assert time.monotonic() < deadline, "the idle server was not stopped"
            time.sleep(0.1)
    finally:
        pool.close()


class Clock:
    """The ``time`` of :mod:`proxy.servers.processes`: it moves only when slept on, and
    notes each sleep instead of waiting it out."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_server_that_died_comes_back_after_a_back_off_one_stopped_at_once(
    pool, tmp_path, monkeypatch
):
    clock = Clock()
    monkeypatch.setattr(processes, "time", clock)
    crashing = server(pool, Watch(pool, delay=0), tmp_path, "crashing")
    with crashing.using():
        pass
    assert clock.slept == []
    crashing._process.kill()
    crashing._process.wait()
    with crashing.using():
        assert crashing.state == "ready"
    assert clock.slept == [FIRST_BACKOFF]
    crashing.stop("on purpose")
    with crashing.using():
        assert crashing.state == "ready"
    assert clock.slept == [FIRST_BACKOFF]  # no pause the second time


def test_a_server_deaf_to_sigterm_is_killed_after_the_grace(pool, tmp_path):
    """The stop's wait through the grace ends with the server still running, and the next
    finds it killed."""
    deaf = server(
        pool,
        Watch(pool, delay=0),
        tmp_path,
        "deaf",
        stop_grace=0.5,
        command=(
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ignoring', signal.Signals.SIGTERM.name, flush=True); time.sleep(60)",
        ),
        ready=lambda url: "ignoring SIGTERM" in (tmp_path / "deaf.log").read_text(),
    )
    with deaf.using():
        process = deaf._process
    waits = []  # (timeout, what it found) of each wait for the process
    wait = process.wait

    def noted_wait(timeout=None):
        try:
            code = wait(timeout)
        except subprocess.TimeoutExpired:
            waits.append((timeout, "running"))
            raise
        waits.append((timeout, code))
        return code

    process.wait = noted_wait
    deaf.stop("on purpose")
    assert waits == [(0.5, "running"), (None, -9)]


LISTENER = (
    sys.executable,
    "-c",
    "import socket, sys, time; s = socket.socket();"
    " s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
    " s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)",
)


def test_a_servers_port_is_its_own_from_the_models_file_to_its_close(tmp_path):
    """Chosen when the models file is read, started later: meanwhile no other process is
    given the port, the server itself binds it, and closing the server gives it back."""
    bound = bind_port()
    port = bound.getsockname()[1]
    pool = ProcessPool()
    launch = Launch("bound", (*LISTENER, str(port)), port, tmp_path / "bound.log", {})
    listening = ManagedServer(launch, pool, lambda url: reachable(port) or None, port=bound)
    pool.add(listening)
    try:
        with pytest.raises(OSError), socket.socket() as other:
            other.bind(("127.0.0.1", port))
        with listening.using():
            assert reachable(port)
    finally:
        pool.close()
    assert bound.fileno() == -1
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
