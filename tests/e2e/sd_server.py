"""stable-diffusion.cpp's sd-server, as an operator runs it beside llama-server: built by
``.ci/wheels.sh`` from the sources in stable-diffusion-cpp-python's sdist (or the user's
own, ``$SD_SERVER_BIN``), serving the tiny model of :mod:`.sdmodel` at 64x64 in one step."""

from __future__ import annotations

import os
import pathlib
import subprocess

import requests

from tests.e2e.llama_server import wheel_cache
from tests.polling import wait_for
from tests.processes import free_port, stop_process

BIN_ENV_VAR = "SD_SERVER_BIN"


def find_sd_server() -> pathlib.Path:
    """$SD_SERVER_BIN, else the one ``.ci/wheels.sh`` built; a missing one is an error
    naming how to build it."""
    given = os.environ.get(BIN_ENV_VAR)
    built = sorted(wheel_cache().glob("sd-server/*/sd-server"))
    path = pathlib.Path(given) if given else built[-1] if built else None
    if path is None or not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(
            f"no sd-server found: set {BIN_ENV_VAR} to one, or run bash .ci/wheels.sh"
        )
    return path


class SdServer:
    """sd-server on 127.0.0.1 drawing ``model``: by default 64x64 pictures in one step,
    with no guidance (one pass of the model a step), on one thread."""

    STARTUP_TIMEOUT = 120.0

    def __init__(self, model: pathlib.Path, log_path: pathlib.Path, *, steps: int = 1) -> None:
        self.model = pathlib.Path(model)
        self.log_path = pathlib.Path(log_path)
        self.steps = steps
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self) -> "SdServer":
        empty = self.log_path.parent / f"loras-{self.port}"  # it walks this on every request
        empty.mkdir(exist_ok=True)
        arguments = [
            str(find_sd_server()), "-m", str(self.model), "--listen-ip", "127.0.0.1",
            "--listen-port", str(self.port), "-t", "1", "--steps", str(self.steps),
            "--cfg-scale", "1", "-W", "64", "-H", "64", "--lora-model-dir", str(empty),
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, "sd-server to load its model", timeout=self.STARTUP_TIMEOUT)
        return self

    def _up(self) -> bool:
        assert self.process.poll() is None, f"sd-server died: {self.log_path}"
        try:
            return requests.get(self.url + "/v1/models", timeout=5).ok
        except requests.ConnectionError:
            return False

    def __exit__(self, *_exc) -> None:
        stop_process(self.process, 10)
