"""What the tests of managed servers share: how the proxy is told which program runs its
servers, the admin key, and how to find the processes it started."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import psutil
import requests

from tests.processes import ProxyProcess

ADMIN = "admin-secret"
NO_UPSTREAM = "http://127.0.0.1:9"  # the proxy runs its own servers: this one is never used


@dataclass(frozen=True)
class Program:
    """What runs the proxy's servers: its flags and environment."""

    args: tuple
    env: dict


def servers_of(proxy: ProxyProcess) -> list:
    """The model servers running under the proxy (not its gunicorn workers or supervisor)."""
    children = psutil.Process(proxy.process.pid).children(recursive=True)
    return [child for child in children if child.status() != psutil.STATUS_ZOMBIE
            and (child.cmdline()[:1] != [sys.executable]
                 or "proxy.servers.engine" in child.cmdline())]


def supervisors_of(proxy: ProxyProcess) -> list:
    children = psutil.Process(proxy.process.pid).children(recursive=True)
    return [child for child in children if "proxy.servers.supervisor" in child.cmdline()]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def admin(proxy: ProxyProcess, method: str, path: str) -> requests.Response:
    return requests.request(method, proxy.url + "/admin" + path, timeout=60,
                            headers={"Authorization": f"Bearer {ADMIN}"})
