"""Run real server.cpp servers of every kind for end-to-end tests.

The proxy's e2e tests need the genuine upstream HTTP behaviour, not a mock, so this module
finds the binaries and runs them on loopback ports as restartable subprocesses:

- ``llamacpp``: current llama-server (the user's own, or the one the llama-cpp-python
  wheel installs);
- ``powerinfer`` and ``llamacpp-2023``: the servers vendored by llama-cpp-python 0.2.18 and
  0.2.27, which ``.ci/servers.sh`` builds into the cache;
- ``bundled``: the llama.cpp engine the xllamacpp wheel bundles, as the proxy runs it (an
  upstream of current llama-server's kind).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
import time

import requests

from proxy.config.runtime import Runtime
from proxy.servers.binaries import from_llama_cpp_python
from tests.processes import free_port, stop_process

BIN_ENV_VAR = "LLAMA_SERVER_BIN"
KINDS = ("powerinfer", "llamacpp-2023", "llamacpp")
OLD_SERVER_VERSIONS = {"powerinfer": "0.2.18", "llamacpp-2023": "0.2.27"}


@dataclasses.dataclass(frozen=True)
class ServerBinary:
    """A llama-server executable and the full environment it must be started with."""

    path: pathlib.Path
    env: dict[str, str]


def wheel_cache() -> pathlib.Path:
    """Where ``.ci/wheels.sh`` leaves what it builds (the same variable decides)."""
    wheels = os.environ.get("OAI_PROXY_WHEEL_CACHE") or "~/.cache/oai-proxy/wheels"
    return pathlib.Path(wheels).expanduser()


def old_server_cache() -> pathlib.Path:
    """Where ``.ci/servers.sh`` leaves the old servers (the same variables decide)."""
    if os.environ.get("OAI_PROXY_SERVER_CACHE"):
        return pathlib.Path(os.environ["OAI_PROXY_SERVER_CACHE"])
    return wheel_cache() / "servers"


def find_server(kind: str) -> ServerBinary:
    """The binary of ``kind``; a missing one is an error naming how to build it."""
    if kind == "llamacpp":
        return find_llama_server()
    path = old_server_cache() / OLD_SERVER_VERSIONS[kind] / "server"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"no {kind} server at {path}: run bash .ci/servers.sh")
    return ServerBinary(path, dict(os.environ))


def find_llama_server() -> ServerBinary:
    """Locate llama-server: $LLAMA_SERVER_BIN first, else the llama-cpp-python wheel's, found
    (with its libraries) as the proxy finds it for ``--model``."""
    user_binary = os.environ.get(BIN_ENV_VAR)
    if user_binary:
        path = pathlib.Path(user_binary)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"{BIN_ENV_VAR}={user_binary!r} is not an executable file")
        return ServerBinary(path, dict(os.environ))

    found = from_llama_cpp_python()
    if found:
        path, library_dirs = found
        return ServerBinary(path, Runtime.from_environment().child_environment(library_dirs))
    raise FileNotFoundError(
        f"no llama-server found: set {BIN_ENV_VAR} to a llama-server binary, or install a "
        f"llama-cpp-python wheel built with llama-server (see .ci/wheels.sh)"
    )


class LlamaServer:
    """A server.cpp of one kind on 127.0.0.1 serving one model; restartable in place.

    The port is chosen once, so after stop() or kill() a new start() serves the same URL,
    which is what recovery tests need.  Output of every run is appended to log_path; the
    process runs in the log's folder, where the old servers also write their llama.log.
    """

    STARTUP_TIMEOUT = 60.0
    STOP_TIMEOUT = 5.0

    def __init__(
        self,
        model: pathlib.Path,
        log_path: pathlib.Path,
        *,
        kind: str = "llamacpp",  # or an old kind (KINDS), or "bundled"
        parallel: int = 2,
        ctx_size: int = 2048,
        threads: int = 1,
        context_shift: bool = False,
        embedding: bool = False,
        extra_args: list[str] | tuple[str, ...] = (),
    ):
        self.kind = kind
        self.binary = find_server("llamacpp" if kind == "bundled" else kind)
        self.model = pathlib.Path(model)
        self.log_path = pathlib.Path(log_path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        current = kind in ("llamacpp", "bundled")
        program = (
            [sys.executable, "-m", "proxy.servers.engine"]
            if kind == "bundled"
            else [str(self.binary.path)]
        )
        # One thread: the suite runs servers side by side on two cores, where a second
        # compute thread of one server only spin-waits for a core another holds.
        # The old servers always shift their context and have no web UI to turn off.
        self.args = [
            *program,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-m",
            str(self.model),
            "--parallel",
            str(parallel),
            "--ctx-size",
            str(ctx_size),
            "--threads",
            str(threads),
            *(["--no-webui"] if current else []),
            *(["--context-shift"] if context_shift and current else []),
            *(
                (["--embedding", "--pooling", "mean"] if current else ["--embedding"])
                if embedding
                else []
            ),
            *extra_args,
        ]
        self.ready_path = "/health" if current else "/model.json"
        self.proc: subprocess.Popen | None = None

    @property
    def legacy(self) -> bool:
        return self.kind not in ("llamacpp", "bundled")

    def __enter__(self) -> "LlamaServer":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Launch the server and return once it answers (``/health``, or ``/model.json``)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.kind} server already running on {self.url}")
        with open(self.log_path, "ab") as log:
            log.write(f"--- start: {' '.join(self.args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.log_path.parent,
                env=self.binary.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Poll until 200; fail fast, with the log tail, if the process dies."""
        deadline = time.monotonic() + self.STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} server exited with {self.proc.returncode} during "
                    f"start-up:\n{self.log_tail()}"
                )
            try:
                if requests.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(
            f"{self.kind} server not ready after {self.STARTUP_TIMEOUT:.0f}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """terminate, then kill if it has not exited within STOP_TIMEOUT.

        SIGTERM alone is not enough: llama-server hangs in shutdown while a request is
        still being generated.
        """
        stop_process(self.proc, self.STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL the server at once, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
