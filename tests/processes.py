"""Start and stop real server processes for the live and e2e tiers."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import anthropic
import cohere
import httpx
import ollama
import openai
import requests

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin-secret"  # every proxy a test starts has this admin key, unless its args say another


PORTS_PER_WORKER = 500
# every block below the kernel's ephemeral ports (32768 up), which outgoing connections take
# between a port's check and its server's bind: CI's sixteen quick benches each take a block.
# Two checkouts tested at once on one machine each set their own
FIRST_PORT = int(os.environ.get("OAI_PROXY_TEST_FIRST_PORT", "20000"))


def _worker_ports() -> Iterator[int]:
    """This test process's own block of ports, round and round: pytest-xdist's workers
    (``PYTEST_XDIST_WORKER`` = ``gw0``, ``gw1``, …) each take a block of their own, so a
    port one worker handed out is never handed out by another before its server binds it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    first = FIRST_PORT + int(worker.removeprefix("gw") or 0) * PORTS_PER_WORKER
    return itertools.cycle(range(first, first + PORTS_PER_WORKER))


_PORTS = _worker_ports()


def free_port() -> int:
    """A port of this worker's block that nothing holds now (not even a closing socket)."""
    for _ in range(PORTS_PER_WORKER):
        port = next(_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in this worker's block of {PORTS_PER_WORKER}")


def stop_process(process: Optional[subprocess.Popen], timeout: float) -> None:
    """Terminate, then kill if it has not exited within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProxyProcess:
    """The proxy as a subprocess: ``oai-proxy`` (waitress, gunicorn or granian) or ``gunicorn
    proxy.wsgi``.

    ``how`` is ``waitress`` (``python -m proxy``), ``gunicorn`` or ``granian`` (``python -m
    proxy --server …`` with two workers) or ``wsgi`` (``gunicorn proxy.wsgi`` configured
    through ``PROXY_*`` env vars).
    """

    def __init__(
        self,
        upstream: str,
        log_path: Path,
        *,
        how: str = "waitress",
        args: Sequence[str] = (),
        env: Optional[dict] = None,
        sigint: str = "default",
        program: Sequence[str] = (sys.executable, "-m", "proxy"),
        port: Optional[int] = None,
    ) -> None:
        """``sigint="ignored"`` starts it as a shell starts a job in the background;
        ``program`` is the ``oai-proxy`` command (another installation's, say); ``port``, a
        free one unless given."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.exchanges_db = log_path.parent / f"exchanges-{self.port}.sqlite3"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PROXY_USAGE_DB": str(log_path.parent / f"usage-{self.port}.sqlite3"),
            "PROXY_RESPONSES_DB": str(log_path.parent / f"responses-{self.port}.sqlite3"),
            "PROXY_EXCHANGES_DB": str(self.exchanges_db),
            "PROXY_SLOT_CACHE_DIR": str(log_path.parent / f"slots-{self.port}"),
            "PROXY_FILES_DIR": str(log_path.parent / f"files-{self.port}"),
            # the journals of a Redis's charges are kept by its address: one a proxy killed
            # in an earlier run left must not be replayed into another Redis of that address
            "HOME": str(log_path.parent / "home"),
        }
        if how == "wsgi":
            self.env.update(
                PROXY_LLAMA_API=upstream,
                PROXY_PORT=str(self.port),
                PROXY_THREADS="32",
                PROXY_ADMIN_KEY=ADMIN,
            )
            self.command = [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "gunicorn.conf.py"),
                "proxy.wsgi",
                *args,
            ]
        else:
            self.command = [
                *program,
                "--llama-api",
                upstream,
                "--port",
                str(self.port),
                "--threads",
                "32",
                "--admin-key",
                ADMIN,
            ]
            if how in ("gunicorn", "granian"):
                self.command += ["--server", how, "--workers", "2"]
            self.command += args  # last, so they win
        self.env.update(env or {})  # last too
        self.ignore_sigint = sigint == "ignored"
        self.process: Optional[subprocess.Popen] = None
        self._clients: list = []

    @classmethod
    def as_given(
        cls, command: Sequence[str], port: int, log_path: Path, env: Optional[dict] = None
    ) -> "ProxyProcess":
        """The proxy run by ``command`` exactly (a documented command line, say), which makes
        it listen on ``port``."""
        proxy = cls("", log_path, env=env, port=port)
        proxy.command = list(command)
        return proxy

    def start(self, timeout: float = 30) -> "ProxyProcess":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_ignore_sigint if self.ignore_sigint else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                raise RuntimeError(
                    f"the proxy exited with {self.process.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                requests.get(self.url + "/health", timeout=2)
                return self
            except (requests.ConnectionError, requests.Timeout):  # not listening, or still busy
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the proxy did not answer within {timeout}s:\n{self.log()[-3000:]}")

    def health(self, timeout: float = 10) -> dict:
        """``/health`` as the admin reads it: every replica's detail (anyone else is told
        only whether the proxy is healthy)."""
        return requests.get(
            self.url + "/health", timeout=timeout, headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()

    def exchanges(self, query: str = "") -> list:
        """Every exchange the inspector kept (those ``query`` picks, as
        ``?api=anthropic``), whole, oldest first."""
        headers = {"Authorization": f"Bearer {ADMIN}"}
        listed = requests.get(
            f"{self.url}/admin/exchanges{query}", headers=headers, timeout=30
        ).json()["exchanges"]
        return [
            requests.get(
                f"{self.url}/admin/exchanges/{b['id']}", headers=headers, timeout=60
            ).json()
            for b in reversed(listed)
        ]

    def sdk(self, api_key: str = "unused", **options) -> openai.OpenAI:
        """An ``openai`` client of this proxy, closed when the proxy stops (no socket left
        for the garbage collector to complain about)."""
        client = openai.OpenAI(
            base_url=self.url + "/v1", api_key=api_key, max_retries=0, **{"timeout": 60, **options}
        )
        self._clients.append(client)
        return client

    def anthropic(self, api_key: str = "unused", **options) -> anthropic.Anthropic:
        """An ``anthropic`` client of this proxy, closed when the proxy stops."""
        client = anthropic.Anthropic(
            base_url=self.url, api_key=api_key, max_retries=0, **{"timeout": 60, **options}
        )
        self._clients.append(client)
        return client

    def ollama(self, api_key: str = "", **options) -> ollama.Client:
        """An ``ollama`` client of this proxy (the key as a bearer token, as Ollama's clients
        send the headers they are given), closed when the proxy stops."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        client = ollama.Client(host=self.url, headers=headers, **{"timeout": 120, **options})
        self._clients.append(client)
        return client

    def transport(self) -> httpx.HTTPTransport:
        """An ``httpx`` transport (the pool that holds the sockets) for a library that builds
        its own client of this proxy (LangChain's chat models), closed when the proxy stops."""
        pool = httpx.HTTPTransport()
        self._clients.append(pool)
        return pool

    def cohere(self, api_key: str = "unused", version: int = 2):
        """A ``cohere`` client of this proxy (``version`` 1: the v1 API's), closed when the
        proxy stops."""
        connection = httpx.Client(timeout=60)
        self._clients.append(connection)
        kind = cohere.ClientV2 if version == 2 else cohere.Client
        return kind(api_key=api_key, base_url=self.url, httpx_client=connection)

    def kill(self) -> None:
        """SIGKILL the process at once, as a crash would; ``start()`` runs it again on the
        same port."""
        self.process.kill()
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        stop_process(self.process, timeout=10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> "ProxyProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
