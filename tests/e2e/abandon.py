"""Requests an editor gives up on as its user types on: each sent over a socket of its own,
then dropped while the model writes; and what llama-server's own ``/slots`` and ``/metrics``
say of its slots meanwhile."""

from __future__ import annotations

import json
import re
import socket
import time
from urllib.parse import urlsplit

import requests

PREDICTED = re.compile(rb"^llamacpp:tokens_predicted_total (\S+)$", re.M)


def sent(url: str, path: str, body: dict) -> socket.socket:
    """A socket that has sent ``body`` to ``url + path`` and reads nothing back."""
    where = urlsplit(url)
    data = json.dumps(body).encode()
    connection = socket.create_connection((where.hostname, where.port), timeout=30)
    connection.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return connection


def dropped(connection: socket.socket) -> None:
    """Close at once, as a client that has gone: a reset, not a polite close."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    connection.close()


def busy_slots(server_url: str) -> int:
    """How many of the server's slots are generating (the server answers between two of its
    steps, which a starved machine may stretch to seconds)."""
    slots = requests.get(server_url + "/slots", timeout=60).json()
    return sum(bool(slot.get("is_processing")) for slot in slots)


def predicted(server_url: str) -> float:
    """The tokens the server has generated since it started (its ``--metrics``)."""
    text = requests.get(server_url + "/metrics", timeout=10).content
    return float(PREDICTED.search(text).group(1))


def until(condition, timeout: float, every: float = 0.002) -> float:
    """Seconds until ``condition()`` held, looked at every ``every`` seconds; a
    ``TimeoutError`` once ``timeout`` has passed."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not so after {timeout} s")
        time.sleep(every)
    return time.monotonic() - started
