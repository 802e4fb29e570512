"""The README's commands as a newcomer types them, on a machine with no compiler and no
llama-server: in a fresh copy of the project with a model file beside it, ``pip install . &&
oai-proxy --model smol.gguf`` (a relative path) brings the bundled llama.cpp engine and
answers; a missing file stops it naming the file; the README's ``hf:`` line fetches a model
from a hub (one on loopback: ``HF_ENDPOINT``), serves it, and serves it again from the cache
once the hub is gone; a models file's relative paths hold from any folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.hubserver import Hub
from tests.polling import wait_for
from tests.processes import ADMIN, ROOT, free_port

from .tinymodel import write_tiny_llama_gguf

pytestmark = pytest.mark.e2e

README = (ROOT / "README.md").read_text(encoding="utf-8")
FIRST_COMMAND = re.search(r"```sh\n(pip install \. && oai-proxy --model .+)\n```", README).group(1)
HUB_COMMAND = re.search(r"```sh\n(oai-proxy --model hf:.+)\n```", README).group(1)
HUB_REPO = re.search(r"hf:([^:\s]+)", HUB_COMMAND).group(1)
MESSAGES = [{"role": "user", "content": "hi"}]


class Newcomer:
    """A shell in a folder of its own, with a fresh virtual environment first on ``PATH``
    (and nothing else there: no compiler, no llama-server), running the README's commands."""

    def __init__(self, home: Path) -> None:
        self.venv = home / "venv"
        tools = home / "no-tools"
        tools.mkdir()
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        self.env = {
            **os.environ,
            "PATH": f"{self.venv / 'bin'}{os.pathsep}/bin{os.pathsep}{tools}",
            "CC": "/bin/false",
            "CXX": "/bin/false",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "HF_HOME": str(home / "hf"),
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("VIRTUAL_ENV", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN"):
            self.env.pop(name, None)

    def run(
        self, command: str, folder: Path, timeout: float = 60, **env
    ) -> subprocess.CompletedProcess:
        """``command`` as a shell runs it, to its end."""
        return subprocess.run(
            ["bash", "-c", command],
            cwd=folder,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def serve(self, command: str, folder: Path, log: Path, timeout: float = 60, **env) -> "Served":
        """``command`` in the background, once the proxy it starts answers (its port and
        admin key come from ``PROXY_*`` variables: the command stays as the README has it)."""
        port = free_port()
        with log.open("ab") as output:
            process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=folder,
                env={**self.env, "PROXY_PORT": str(port), "PROXY_ADMIN_KEY": ADMIN, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the shell and what it starts stop together
            )
        served = Served(process, f"http://127.0.0.1:{port}", log)
        try:
            wait_for(served.ready, f"{command!r} to serve", timeout=timeout)
        except BaseException:
            served.stop()
            raise
        return served


class Served:
    """A proxy a newcomer's command started."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the command exited with {self.process.returncode}:\n{self.output()}")
        try:
            return requests.get(self.url + "/health", timeout=2).ok
        except requests.ConnectionError:
            return False

    def chat(self, stream: bool = False) -> str:
        body = {"messages": MESSAGES, "max_tokens": 8, "temperature": 0, "stream": stream}
        answer = requests.post(self.url + "/v1/chat/completions", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        if not stream:
            return answer.json()["choices"][0]["message"]["content"]
        events = [line[6:] for line in answer.text.splitlines() if line.startswith("data: {")]
        return "".join(
            choice["delta"].get("content") or ""
            for event in events
            for choice in json.loads(event)["choices"]
        )

    def health(self) -> dict:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        return requests.get(self.url + "/health", headers=headers, timeout=10).json()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the project as a newcomer clones it, with the model file put beside it."""
    folder = tmp_path_factory.mktemp("newcomer") / "oai-proxy"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (part.decode() for part in tracked)):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    write_tiny_llama_gguf(folder / re.search(r"--model (\S+)", FIRST_COMMAND).group(1))
    return folder


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory) -> Newcomer:
    return Newcomer(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def installed(newcomer, checkout, tmp_path_factory) -> Newcomer:
    """The README's first command, verbatim, run in the copy: it installs, then serves the
    model file named by a path relative to the folder."""
    log = tmp_path_factory.mktemp("logs") / "first.log"
    started = time.monotonic()
    served = newcomer.serve(FIRST_COMMAND, checkout, log, timeout=900)
    try:
        newcomer.first_answer = served.chat()
        newcomer.first_stream = served.chat(stream=True)
        newcomer.took = time.monotonic() - started
        newcomer.first_health = served.health()
    finally:
        served.stop()
    newcomer.first_output = served.output()
    return newcomer


def test_the_readmes_first_command_serves_a_model_in_the_current_folder(installed, checkout):
    assert installed.first_answer and installed.first_stream == installed.first_answer
    engine = installed.first_health["managed"]["engine"]
    assert engine.startswith("bundled llama.cpp (xllamacpp "), engine
    assert "preloading" not in installed.first_output  # no failed start on the way
    print(f"{FIRST_COMMAND!r}: first answer {installed.took:.1f}s after the install began")


def test_a_missing_model_file_stops_it_naming_the_file(installed, tmp_path):
    finished = installed.run("oai-proxy --model missing.gguf", tmp_path)
    assert finished.returncode == 1
    assert f"cannot read the model file {tmp_path / 'missing.gguf'}" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_the_readmes_hub_line_fetches_serves_and_serves_offline(installed, tmp_path):
    model = write_tiny_llama_gguf(tmp_path / "tiny.gguf").read_bytes()
    name = HUB_REPO.rpartition("/")[2].removesuffix("-GGUF")
    hub = Hub(
        {HUB_REPO: {f"{name}-Q4_K_M.gguf": model, f"{name}-Q8_0.gguf": b"GGUF not this one"}}
    ).start()
    log = tmp_path / "hub.log"
    try:
        served = installed.serve(HUB_COMMAND, tmp_path, log, HF_ENDPOINT=hub.url)
        try:
            assert served.chat()
        finally:
            served.stop()
    finally:
        hub.stop()
    assert hub.downloads(f"{name}-Q4_K_M.gguf") == [""] and not hub.downloads(f"{name}-Q8_0.gguf")
    again = installed.serve(HUB_COMMAND, tmp_path, tmp_path / "offline.log", HF_ENDPOINT=hub.url)
    try:
        assert again.chat()  # the hub is gone: the cache serves
    finally:
        again.stop()
    assert "from the cache" in again.output()


def test_a_models_files_relative_paths_hold_from_another_folder(installed, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama_gguf(models / "tiny.gguf")
    (models / "models.toml").write_text(
        '[models.tiny]\nmodel = "tiny.gguf"\nargs = ["-c", "512"]\npreload = true\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    served = installed.serve(
        "oai-proxy --config ../models/models.toml", elsewhere, tmp_path / "config.log"
    )
    try:
        assert served.chat()
    finally:
        served.stop()
