"""Start and stop what the bench measures: the upstreams and the proxy, each its own process."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import requests

from tests.processes import ROOT, free_port, stop_process

START_TIMEOUT = 60.0
LITELLM_START_TIMEOUT = 180.0  # its imports alone take half a minute on a busy machine


class Service:
    """A server subprocess on a free loopback port, ready once ``GET /health`` answers 200."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        log_path: Path,
        *,
        health: str = "/health",
        env: Optional[dict] = None,
        root: Path = ROOT,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.root = root
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.health = health
        self.env = env
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    def start(self) -> "Service":
        return self.launch().ready()

    def launch(self) -> "Service":
        """Start the process, not waiting for it to serve (:meth:`ready` waits)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    def ready(self) -> "Service":
        """Return once it serves; its log's name in the error when it cannot."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + self.health, timeout=2).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(
            f"{self.name} was not healthy within {self.start_timeout:.0f}s; see {self.log_path}"
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_process(self.process, timeout=15)


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def all_running(services: dict) -> Iterator[dict]:
    """``services`` (by label) started side by side, each stopped at the end: a bench with
    a dozen ways waits for their starts once, not a dozen times."""
    with contextlib.ExitStack() as stack:
        for service in services.values():
            service.launch()
            stack.callback(service.stop)
        for service in services.values():
            service.ready()
        yield services


def synthetic(log_dir: Path) -> Service:
    port = free_port()
    return Service(
        "synthetic server.cpp",
        [sys.executable, "-m", "bench.synthetic", "--port", str(port)],
        port,
        log_dir / "synthetic.log",
    )


def proxy(
    server: str,
    upstream: str,
    log_dir: Path,
    *,
    threads: int,
    workers: int,
    args: Sequence[str] = (),
    name: str = "",
    root: Path = ROOT,
    env: Optional[dict] = None,
) -> Service:
    """``oai-proxy`` under waitress, gunicorn (gthread) or granian, as a user would start it
    (from the checkout at ``root``: another one's proxy can be measured beside this one's),
    with ``env`` beside this process's environment."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "proxy",
        "--llama-api",
        upstream,
        "--port",
        str(port),
        "--server",
        server,
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        *args,
    ]
    if server in ("gunicorn", "granian"):
        command += ["--workers", str(workers)]
    name = name or server
    if "--usage-db" not in args:  # a file of its own: no proxy waits on another's writes,
        # and none writes into the user's own (~/.cache/oai-proxy)
        command += ["--usage-db", str(log_dir / f"usage-{name}.sqlite3")]
    return Service(f"proxy under {name}", command, port, log_dir / f"proxy-{name}.log", root=root,
                   env={**os.environ, **env} if env else None)  # fmt: skip


def passthrough(
    upstream: str, log_dir: Path, kind: str = "flask", server: str = "waitress"
) -> Service:
    """One of the floors under the proxy's shape (:mod:`bench.passthrough`: ``relay``,
    ``wsgi`` or ``flask``, under ``server``) in front of ``upstream``."""
    port = free_port()
    return Service(
        f"pass-through ({kind}, {server})",
        [
            sys.executable,
            "-m",
            "bench.passthrough",
            "--kind",
            kind,
            "--server",
            server,
            "--upstream",
            upstream,
            "--port",
            str(port),
        ],
        port,
        log_dir / f"passthrough-{kind}-{server}.log",
    )


def litellm(command: Sequence[str], upstream: str, log_dir: Path, model: str = "bench") -> Service:
    """LiteLLM's proxy (started by ``command``) in front of llama-server's OpenAI endpoint as
    ``model``, one worker, as its users configure it; without keys, like the proxy it is
    compared with, and reading its cost map locally (no network at start)."""
    port = free_port()
    config = log_dir / "litellm.yaml"  # JSON, which YAML reads
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": model,
                        "litellm_params": {
                            "model": f"openai/{model}",
                            "api_base": upstream + "/v1",
                            "api_key": "none",
                        },
                    }
                ]
            }
        )
    )
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    return Service(
        "LiteLLM proxy",
        [
            *command,
            "--config",
            str(config),
            "--port",
            str(port),
            "--num_workers",
            "1",
            "--telemetry",
            "False",
        ],
        port,
        log_dir / "litellm.log",
        health="/health/liveliness",
        env=env,
        start_timeout=LITELLM_START_TIMEOUT,
    )


@contextlib.contextmanager
def llama_server(work_dir: Path, *, parallel: int) -> Iterator:
    """The real llama-server with the tests' tiny model: the upstream users actually run."""
    from tests.e2e.llama_server import LlamaServer
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    model = write_tiny_llama_gguf(work_dir / "tiny-llama.gguf")
    # without its prompt cache in host memory, which grows with every request and slows
    # each one: a bench sending one prompt thousands of times would measure that growth
    with LlamaServer(
        model,
        work_dir / "llama-server.log",
        parallel=parallel,
        ctx_size=512 * parallel,
        extra_args=["--cache-ram", "0"],
    ) as server:
        yield server


def endless(model: Path, work: Path, slots: int):
    """A llama-server of ``slots`` slots whose answers run to their budget (no end of text):
    what a bench of turns and slots measures with answers of known lengths."""
    from tests.e2e.llama_server import LlamaServer

    return LlamaServer(model, work / "server.log", parallel=slots, ctx_size=slots * 1024,
                       extra_args=["--ignore-eos"])  # fmt: skip


def p50_ms(url: str, count: int, key: str = "") -> float:
    """p50 ms of ``count`` non-streamed completions sent one after another."""
    session = requests.Session()
    if key:
        session.headers["Authorization"] = f"Bearer {key}"
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 16}
    for _ in range(50):  # warm up connections and the upstream detection
        session.post(url + "/v1/completions", json=body, timeout=30).raise_for_status()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        session.post(url + "/v1/completions", json=body, timeout=30).raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def missing(upstream: str) -> str:
    """Why ``upstream`` cannot run on this machine, or '' when it can."""
    if upstream != "llama-server":
        return ""
    if importlib.util.find_spec("gguf") is None:
        return "the tiny model is written with gguf: pip install -e '.[test]'"
    from tests.e2e.llama_server import find_llama_server

    try:
        find_llama_server()
    except FileNotFoundError as exc:
        return str(exc)
    return ""


def redis_server(work: Path):
    """A throwaway redis-server, or None when the machine has none."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return process, url
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not answer")
