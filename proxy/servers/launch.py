"""How a model's server is started and stopped, before any state is kept of it: its command
with ports and model filled in, its log, and the signals that end its process group."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from proxy.servers import showing

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL = 20  # lines of a failed server's output quoted in the error
RUN_OUTPUT = 64 * 1024  # bytes of a server's log read for why its start failed
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
    program: str = ""  # what runs it: a binary's path, the bundled engine, or its command
    estimate: int = 0  # bytes of memory it is expected to take (0: unknown)
    stop_grace: float = STOP_GRACE  # seconds between SIGTERM and SIGKILL

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def shown(self) -> str:
        """The command as logs show it, its secrets blanked."""
        return showing.shown(self.command)

    def scrubbed(self, text: str) -> str:
        """``text`` (the server's output, an error quoting it) with the command's secrets
        blanked, should the server have echoed them."""
        return showing.scrubbed(text, showing.secrets(self.command))

    def run_output(self) -> str:
        """What the server wrote since it was last started (the end of it, at most
        :data:`RUN_OUTPUT` bytes), its command's secrets blanked."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(log.seek(0, os.SEEK_END) - RUN_OUTPUT, 0))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        _, header, run = ("\n" + text).rpartition("\n--- ")
        return self.scrubbed(run.partition("\n")[2] if header else text)

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        """The last ``lines`` of the server's log, its command's secrets blanked."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return self.scrubbed("\n".join(text.splitlines()[-lines:]))


def stop_group(process: subprocess.Popen, grace: float) -> None:
    """Stop ``process``'s group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def bind_port() -> socket.socket:
    """A free local port, kept until the socket is closed: a server may start long after its
    port was chosen, and meanwhile no other process's ``bind(0)`` or outgoing connection is
    given it. The socket is bound and never listens, with ``SO_REUSEADDR`` and
    ``SO_REUSEPORT``, which let the server (which sets one of them) bind the port itself."""
    bound = socket.socket()
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    bound.bind(("127.0.0.1", 0))
    return bound


def command_for(template: Sequence[str], port: int, model: str) -> tuple:
    """Fill ``${PORT}`` and ``${MODEL}`` into a server command."""
    return tuple(part.replace("${PORT}", str(port)).replace("${MODEL}", model) for part in template)
