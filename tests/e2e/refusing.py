"""A server that refuses every chat with 429 or 503 (``servers/refusing_upstream.py``), as
a process of its own on a port of the worker's block."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from tests.polling import wait_for
from tests.processes import free_port, stop_process

SCRIPT = Path(__file__).parent / "servers" / "refusing_upstream.py"


class RefusingServer:
    """Answers every chat with ``status``; counts what it refused."""

    def __init__(self, status: int, log_path: Path) -> None:
        self.status = status
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def refused(self) -> int:
        return requests.get(self.url + "/refused", timeout=10).json()["refused"]

    def __enter__(self) -> "RefusingServer":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SCRIPT), "--port", str(self.port)]
                + ["--status", str(self.status)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._up, f"the server answering {self.status} to listen")
        return self

    def _up(self) -> bool:
        try:
            return self.refused() == 0
        except requests.ConnectionError:
            return False

    def __exit__(self, *exc_info) -> None:
        stop_process(self.process, timeout=10)
