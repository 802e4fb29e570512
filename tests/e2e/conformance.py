"""llama.cpp's own server tests (``tools/server/tests`` of the pinned llama.cpp) as a
conformance tier: a pytest plugin for that suite's own run, which serves each of its tests
from the pinned llama-server with tiny models in place of those it downloads, either
directly or with the proxy in front, on the port the test asked for.

The suite starts its server through ``utils.ServerProcess.start``; this plugin keeps that
method (every flag the test set reaches the server as the suite writes it) and changes four
things: the models the suite names by their hub repository are the tiny ones written here
(:data:`SUBSTITUTES`), nothing is downloaded ahead (``ServerPreset.load_all``), a server
given no ``--threads`` takes one, and, through the proxy, the server listens on another port
while the proxy takes the test's, told the server's API key where the test set one.
``OAI_PROXY_CONFORMANCE`` says which (``direct`` or ``proxy``),
``OAI_PROXY_CONFORMANCE_MODELS`` where the tiny models are (:func:`write_substitutes`
writes them).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from typing import Mapping, Optional, Sequence

import gguf
import requests

from tests.e2e.codermodels import CODERS
from tests.e2e.rerankmodel import write_reranker
from tests.e2e.tinymodel import write_tiny_llama_gguf
from tests.e2e.visionmodel import write_vision_model

MODE = "OAI_PROXY_CONFORMANCE"
MODELS = "OAI_PROXY_CONFORMANCE_MODELS"
ONLY = "OAI_PROXY_CONFORMANCE_ONLY"  # a file of the ids of the tests to run, one a line
INNER = 5  # the server's port through the proxy: the test's, plus this
# each model the suite names by ``--hf-repo`` (and ``--hf-file``): its tiny stand-in's
# files in the models folder, the model first, then its projector where it has one
SUBSTITUTES = {
    "ggml-org/test-model-stories260K": ("tiny-llama.gguf",),
    "ggml-org/test-model-stories260K-infill": ("tiny-coder.gguf",),
    "ggml-org/models/bert-bge-small/ggml-model-f16.gguf": ("tiny-embedder.gguf",),
    "ggml-org/models/jina-reranker-v1-tiny-en/ggml-model-f16.gguf": ("tiny-reranker.gguf",),
    "ggml-org/tinygemma3-GGUF:Q8_0": ("tiny-vision.gguf", "mmproj-tiny-vision.gguf"),
}


def write_substitutes(folder: pathlib.Path) -> pathlib.Path:
    """The tiny models of :data:`SUBSTITUTES`, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_llama_gguf(folder / "tiny-llama.gguf")
    CODERS[0].write(folder).rename(folder / "tiny-coder.gguf")
    write_tiny_llama_gguf(
        folder / "tiny-embedder.gguf", name="tiny-embedder", pooling=gguf.PoolingType.MEAN
    )
    write_reranker(folder / "tiny-reranker.gguf")
    write_vision_model(folder, "tiny-vision")
    return folder


def substituted(argv: Sequence[str], models: pathlib.Path) -> list:
    """``argv`` of a llama-server with the model it names on a hub replaced by its tiny
    stand-in in ``models`` (a model without one is left as named), and nothing asked of
    the network."""
    out: list = []
    repo: Optional[str] = None
    file: Optional[str] = None
    items = iter(argv)
    for item in items:
        if item == "--hf-repo":
            repo = next(items)
        elif item == "--hf-file":
            file = next(items)
        elif item != "--offline":
            out.append(item)
    if repo is None:
        return out
    named = f"{repo}/{file}" if file else repo
    stand_in = SUBSTITUTES.get(named)
    if stand_in is None:
        return out + ["--hf-repo", repo] + (["--hf-file", file] if file else []) + ["--offline"]
    out += ["--model", str(models / stand_in[0])]
    if len(stand_in) > 1:
        out += ["--mmproj", str(models / stand_in[1])]
    return out


class _Substituting:
    """The ``subprocess`` module as the suite's ``utils`` sees it: a server it starts gets
    the stand-ins of its models."""

    def __init__(self, models: pathlib.Path) -> None:
        self.models = models

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    def Popen(self, args, **options):  # noqa: N802 (the name the suite calls)
        return subprocess.Popen(substituted([str(arg) for arg in args], self.models), **options)


def front(server, inner: int, environ: Mapping[str, str]) -> subprocess.Popen:
    """The proxy on ``server``'s port (of each address it lists) in front of the
    llama-server on ``inner``, once it answers; it holds the server's API key where the test
    set one."""
    host = server.server_host.split(",")[0].strip()  # the server's, and the one asked
    host = f"[{host}]" if ":" in host else host
    args = [
        sys.executable, "-m", "proxy", "--llama-api", f"http://{host}:{inner}",
        "--host", server.server_host, "--port", str(server.server_port),
        "--log-level", "warning",
    ]  # fmt: skip
    if server.api_key:
        args += ["--api-key", server.api_key, "--llama-api-key", server.api_key]
    process = subprocess.Popen(args, env=dict(environ))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the proxy exited with {process.returncode}")
        try:
            if requests.get(f"http://{host}:{server.server_port}/health", timeout=2).ok:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.05)
    process.kill()
    raise TimeoutError("the proxy did not answer within 60 seconds")


def pytest_collection_modifyitems(config, items: list) -> None:
    """Only the tests :data:`ONLY` names, where it names any."""
    if os.environ.get(ONLY):
        wanted = set(pathlib.Path(os.environ[ONLY]).read_text().splitlines())
        kept = [item for item in items if item.nodeid in wanted]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def pytest_configure(config) -> None:
    """Serve the suite's tests as :data:`MODE` says (its conftest has imported ``utils``)."""
    import utils  # the suite's own, beside its conftest

    models = pathlib.Path(os.environ[MODELS])
    through = os.environ.get(MODE, "direct") == "proxy"
    utils.subprocess = _Substituting(models)
    utils.ServerPreset.load_all = staticmethod(lambda: None)
    start, stop = utils.ServerProcess.start, utils.ServerProcess.stop

    def started(server, timeout_seconds: int = utils.DEFAULT_HTTP_TIMEOUT) -> None:
        if server.n_threads is None:  # one core of CI's two: the other tests run beside it
            server.n_threads = 1
        if not through:
            return start(server, timeout_seconds)
        outer = server.server_port
        server.server_port = outer + INNER
        try:
            start(server, timeout_seconds)
        finally:
            server.server_port = outer
        server.front = front(server, outer + INNER, os.environ)

    def stopped(server) -> None:
        proxy = getattr(server, "front", None)
        if proxy is not None:
            server.front = None
            proxy.terminate()
            try:
                proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait()
        stop(server)

    utils.ServerProcess.start = started
    utils.ServerProcess.stop = stopped
