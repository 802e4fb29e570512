"""Upstreams of the tests' own, each a process of its own on a port of the worker's block: a
server that refuses every chat with 429 or 503 (``servers/refusing_upstream.py``), a replica
of a real server that fails every second generation (``servers/flaky_replica.py``), and an
engine that keeps what it was sent (``servers/echo_upstream.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from tests.polling import wait_for
from tests.processes import free_port, stop_process

SERVERS = Path(__file__).parent / "servers"


class _Running:
    """A script of :data:`SERVERS` run with ``arguments`` on a port of its own, up once its
    ``counts`` path answers."""

    script = ""
    counts = ""

    def __init__(self, arguments: list, log_path: Path) -> None:
        self.arguments = arguments
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def counted(self) -> dict:
        return requests.get(self.url + self.counts, timeout=10).json()

    def __enter__(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVERS / self.script), "--port", str(self.port)]
                + self.arguments,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._up, f"{self.script} to listen")
        return self

    def _up(self) -> bool:
        try:
            self.counted()
            return True
        except requests.ConnectionError:
            return False

    def __exit__(self, *exc_info) -> None:
        stop_process(self.process, timeout=10)


class RefusingServer(_Running):
    """Answers every chat with ``status``; counts what it refused."""

    script, counts = "refusing_upstream.py", "/refused"

    def __init__(self, status: int, log_path: Path) -> None:
        super().__init__(["--status", str(status)], log_path)
        self.status = status

    def refused(self) -> int:
        return self.counted()["refused"]


class FlakyReplica(_Running):
    """Passes every request on to the server at ``upstream`` but fails every second
    generation with a 500; counts the generations it ``passed`` and ``failed``."""

    script, counts = "flaky_replica.py", "/flaky"

    def __init__(self, upstream: str, log_path: Path) -> None:
        super().__init__(["--upstream", upstream], log_path)


class EchoServer(_Running):
    """An OpenAI-compatible engine that keeps the bodies it was sent and echoes the last
    message; its streams tell no usage."""

    script, counts = "echo_upstream.py", "/received"

    def __init__(self, log_path: Path) -> None:
        super().__init__([], log_path)

    def received(self) -> list:
        return self.counted()["bodies"]

    def clear(self) -> None:
        requests.post(self.url + "/received/clear", timeout=10)

    def release(self) -> None:
        """Let the speech it holds back go."""
        requests.post(self.url + "/received/release", timeout=10)
