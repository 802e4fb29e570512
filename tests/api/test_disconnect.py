"""Telling, without waiting, whether a waiting request's client has hung up."""

from __future__ import annotations

import socket
import threading

import pytest

from proxy.api.serve import client_gone_probe


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.settimeout(30)  # as gunicorn's client sockets have (--client-timeout)
    yield server, client
    server.close()
    client.close()


def test_a_client_still_there_is_not_gone_and_the_probe_does_not_wait(pair):
    """On a socket with no timeout, a probe that read would never come back."""
    server, _ = pair
    server.settimeout(None)
    gone = client_gone_probe({"gunicorn.socket": server})
    answers = []
    probing = threading.Thread(target=lambda: answers.append(gone()), daemon=True)
    probing.start()
    probing.join(30)  # only detects a hang
    assert answers == [False]


def test_a_client_that_sent_more_is_not_gone(pair):
    server, client = pair
    client.sendall(b"GET / HTTP/1.1\r\n")
    assert client_gone_probe({"gunicorn.socket": server})() is False
    assert server.recv(100) == b"GET / HTTP/1.1\r\n"  # peeked, not taken


def test_a_client_that_hung_up_is_gone(pair):
    server, client = pair
    client.close()
    assert client_gone_probe({"gunicorn.socket": server})() is True


class WaitressConnection:
    """What waitress's probe is bound to: its connection, which holds the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock

    def check_client_disconnected(self) -> bool:
        return False  # waitress only knows once it reads the connection, which it does not


@pytest.mark.parametrize("hang_up", [False, True])
def test_under_waitress_the_connection_socket_is_asked(pair, hang_up):
    server, client = pair
    server.setblocking(False)  # as waitress keeps its sockets
    if hang_up:
        client.close()
    probe = WaitressConnection(server).check_client_disconnected
    assert client_gone_probe({"waitress.client_disconnected": probe})() is hang_up


def test_an_unknown_server_never_says_gone():
    assert client_gone_probe({})() is False
