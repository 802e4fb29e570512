"""OpenAI-compatible engines other than llama-server, as a team runs them beside it: the
server of llama-cpp-python (a FastAPI implementation of OpenAI's API over llama.cpp,
installed from PyPI with the tests), started with a key of its own."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import requests

from tests.polling import wait_for
from tests.processes import free_port, stop_process


class LlamaCppPythonServer:
    """``python -m llama_cpp.server`` on ``model``, known to its clients as ``alias``,
    behind ``key``, with a context of ``ctx_size`` tokens."""

    def __init__(
        self, model: pathlib.Path, log_path: pathlib.Path, *, alias: str, key: str, ctx_size: int
    ) -> None:
        self.arguments = ["--model", str(model), "--model_alias", alias, "--api_key", key,
                          "--n_ctx", str(ctx_size), "--n_threads", "1"]  # fmt: skip
        self.log_path = log_path
        self.key = key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self) -> "LlamaCppPythonServer":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llama_cpp.server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.arguments,
                ],  # fmt: skip
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._up, "llama-cpp-python's server to load its model", timeout=120)
        return self

    def _up(self) -> bool:
        assert self.process.poll() is None, f"llama-cpp-python's server died: {self.log_path}"
        try:
            headers = {"Authorization": f"Bearer {self.key}"}
            return requests.get(self.url + "/v1/models", headers=headers, timeout=5).ok
        except requests.ConnectionError:
            return False

    def chat(self, body: dict) -> requests.Response:
        """A chat asked of the engine itself, with its key."""
        headers = {"Authorization": f"Bearer {self.key}"}
        return requests.post(
            self.url + "/v1/chat/completions", json=body, headers=headers, timeout=120,
            stream=bool(body.get("stream")),
        )  # fmt: skip

    def __exit__(self, *exc_info) -> None:
        stop_process(self.process, timeout=10)
