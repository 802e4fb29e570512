"""What the tests of managed servers share: how the proxy is told which program runs its
servers, the admin key, how to start it on a models file, and how to find the processes it
started."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import psutil
import requests

from tests.processes import ADMIN, ProxyProcess

from .llama_server import find_server

NO_UPSTREAM = "http://127.0.0.1:9"  # the proxy runs its own servers: this one is never used


@dataclass(frozen=True)
class Program:
    """What runs the proxy's servers: its flags and environment."""

    args: tuple
    env: dict


def program_of(kind: str) -> Program:
    """What runs the servers the proxy runs, of ``kind``: the llama-server binary
    (``llamacpp``), or the llama.cpp engine the xllamacpp wheel bundles (``bundled``)."""
    if kind == "bundled":
        return Program(("--llama-server", "bundled"), {})
    if kind != "llamacpp":
        raise ValueError(f"the proxy runs current servers only, not {kind}: narrow the test")
    binary = find_server("llamacpp")
    return Program(("--llama-server", str(binary.path)), binary.env)


def servers_of(proxy: ProxyProcess) -> list:
    """The model servers running under the proxy (not its gunicorn workers or supervisor)."""
    children = psutil.Process(proxy.process.pid).children(recursive=True)
    return [child for child in children if _serving(child)]


def _serving(child: psutil.Process) -> bool:
    """Whether ``child`` is a model server still running: one that exits while it is looked
    at (a zombie by the time its command line is read) is not."""
    try:
        command = child.cmdline()
        return child.status() != psutil.STATUS_ZOMBIE and (
            command[:1] != [sys.executable] or "proxy.servers.engine" in command
        )
    except psutil.Error:
        return False


def supervisors_of(proxy: ProxyProcess) -> list:
    children = psutil.Process(proxy.process.pid).children(recursive=True)
    return [child for child in children if "proxy.servers.supervisor" in child.cmdline()]


def gone(process: psutil.Process) -> bool:
    """Whether ``process`` has exited: by the process itself, not its pid, which the
    machine soon gives to another (every thread of every server takes one)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def admin(proxy: ProxyProcess, method: str, path: str) -> requests.Response:
    return requests.request(
        method,
        proxy.url + "/admin" + path,
        timeout=60,
        headers={"Authorization": f"Bearer {ADMIN}"},
    )


def with_file(
    tmp_path, logs, name: str, text: str, *args: str, program: Program = Program((), {})
) -> ProxyProcess:
    """The proxy serving the models file ``text`` (written into the folder ``tmp_path``),
    its servers run by ``program`` and logged under ``logs``, with the admin key."""
    if program.args:
        name = f"{name}-{program.args[-1].rpartition('/')[2]}"
    path = tmp_path / "models.toml"
    path.write_text(text)
    env = program.env or find_server("llamacpp").env
    return ProxyProcess(
        NO_UPSTREAM,
        logs / f"proxy-{name}.log",
        env=env,
        args=[
            "--config",
            str(path),
            "--log-dir",
            str(logs / f"servers-{name}"),
            "--admin-key",
            ADMIN,
            *program.args,
            *args,
        ],
    )
