"""The agent CLIs the e2e tier runs against the proxy, as ``.ci/agents.sh`` installs them."""
from __future__ import annotations

import os
import pathlib
import subprocess

AGENTS_ENV_VAR = "OAI_PROXY_AGENTS"


def agent_binary(name: str) -> pathlib.Path:
    """The ``claude`` or ``codex`` command; a missing one is an error naming how to get it."""
    prefix = pathlib.Path(os.environ.get(AGENTS_ENV_VAR)
                          or pathlib.Path.home() / ".cache" / "oai-proxy" / "agents")
    path = prefix / "node_modules" / ".bin" / name
    if not path.exists():
        raise FileNotFoundError(f"no {name} at {path}: run bash .ci/agents.sh")
    return path


def run_agent(command: list, env: dict, cwd: pathlib.Path,
              timeout: float = 600) -> subprocess.CompletedProcess:
    """Run an agent headless: its own HOME, nothing on stdin (both wait for its end)."""
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout,
                          env={"PATH": os.environ["PATH"], "HOME": str(home), **env})
