"""Open WebUI, as ``.ci/webui.sh`` installs it, run against the proxy: offline (no model
downloads, no update check), without sign-in, its Ollama and OpenAI connections both the
proxy with a key."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import requests

from tests.processes import free_port, stop_process

WEBUI_ENV_VAR = "OAI_PROXY_WEBUI"
STARTUP_TIMEOUT = 180.0  # seconds: its first start in a new data folder migrates a database


def webui_command() -> pathlib.Path:
    """The ``open-webui`` command; a missing one is an error naming how to get it."""
    folder = pathlib.Path(
        os.environ.get(WEBUI_ENV_VAR) or pathlib.Path.home() / ".cache" / "oai-proxy" / "webui"
    )
    path = folder / "venv" / "bin" / "open-webui"
    if not path.exists():
        raise FileNotFoundError(f"no open-webui at {path}: run bash .ci/webui.sh")
    return path


def webui_environment(url: str, key: str, data: pathlib.Path) -> dict:
    """The variables the recipe in docs/clients-and-apis.md gives: the proxy at ``url`` as
    the Ollama connection and (under ``/v1``) the OpenAI one, each with ``key``."""
    return {
        "DATA_DIR": str(data),
        "WEBUI_AUTH": "False",  # one user, the admin, signed in
        "WEBUI_SECRET_KEY": "open-webui-e2e",
        "OFFLINE_MODE": "True",  # no update check, no model downloads
        "RAG_EMBEDDING_MODEL": "",  # and no embedding model to load at start-up
        "BYPASS_EMBEDDING_AND_RETRIEVAL": "True",
        "ENABLE_OLLAMA_API": "True",
        "OLLAMA_BASE_URL": url,
        "OLLAMA_API_CONFIGS": json.dumps({"0": {"key": key}}),
        "ENABLE_OPENAI_API": "True",
        "OPENAI_API_BASE_URL": url + "/v1",
        "OPENAI_API_KEY": key,
        # one request a message: no title, tags or follow-ups asked of the model after it
        "ENABLE_TITLE_GENERATION": "False",
        "ENABLE_TAGS_GENERATION": "False",
        "ENABLE_FOLLOW_UP_GENERATION": "False",
        "ENABLE_AUTOCOMPLETE_GENERATION": "False",
    }


class OpenWebUI:
    """``with OpenWebUI(proxy_url, key, folder, log) as webui``: its page is at ``webui.url``."""

    def __init__(
        self, url: str, key: str, folder: pathlib.Path, log_path: pathlib.Path, env=None
    ) -> None:
        """``env``: its settings beside the recipe's (its speech and pictures engines)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.data = data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.command = [
            str(webui_command()),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(folder),
            **webui_environment(url, key, data),
            **(env or {}),
        }
        self.cwd = folder
        self.process = None

    def __enter__(self) -> "OpenWebUI":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                raise RuntimeError(
                    f"open-webui exited with {self.process.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                if requests.get(self.url + "/health", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise TimeoutError(
            f"open-webui did not answer within {STARTUP_TIMEOUT:.0f}s:\n{self.log()[-3000:]}"
        )

    def __exit__(self, *exc_info) -> None:
        stop_process(self.process, timeout=15)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def close_release_notes(browser) -> None:
    """The first visit shows what is new in this version: "Okay, Let's Go!" closes it."""
    for button in browser.find_elements("tag name", "button"):
        if "Let's Go" in button.text:
            button.click()


def notes_read(url: str, token: str) -> None:
    """Tell Open WebUI at ``url`` that the user of ``token`` has read what is new in its
    version, as "Okay, Let's Go!" does: its pages then open with nothing over them."""
    signed = {"Authorization": f"Bearer {token}"}
    version = requests.get(url + "/api/version", timeout=30).json()["version"]
    requests.post(url + "/api/v1/users/user/settings/update", timeout=30, headers=signed,
                  json={"ui": {"version": version}}).raise_for_status()  # fmt: skip
